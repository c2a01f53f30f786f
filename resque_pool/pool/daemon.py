"""Daemon plumbing: shared lock, double fork, pidfile, stdout/stderr redirection and reopen."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import logging.handlers
import os
import stat
import sys
import tempfile
from typing import IO

from resque_pool.unix import files
from resque_pool.unix.files import pid_alive

logger = logging.getLogger(__name__)


class DaemonError(Exception):
    """A file the pool needs (lock, pidfile, log) cannot be used; one line for a person."""


class PidfileError(DaemonError):
    """Another live process owns the pidfile."""


def _makedirs_for(path: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        try:
            os.makedirs(directory, exist_ok=True)
        except FileExistsError:
            # A regular file where a directory should be: say that, not "File exists".
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None


def _cannot(what: str, path: str, error: OSError) -> DaemonError:
    return DaemonError(f"cannot use {what} {path}: {error.strerror or error}")


def obtain_shared_lock(path: str) -> IO[bytes]:
    """A shared ``flock`` on ``path``, held until this process and every worker forked from
    it exits (the open file description is inherited), so an init script can wait for a
    whole generation with ``flock -x``. Keep the returned file object alive.

    The lock is never truncated, and a symbolic link planted at ``path`` is refused
    (``O_NOFOLLOW``) rather than followed: whatever it points at stays untouched. A FIFO
    or device there is refused too (``O_NONBLOCK`` keeps the open from hanging)."""
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        _makedirs_for(path)
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DaemonError(f"lock file {path} is a symbolic link; refusing to use it") from None
        raise _cannot("lock file", path, error) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DaemonError(f"lock file {path} is not a regular file")
    handle = os.fdopen(fd, "rb")
    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    return handle


def daemonize() -> None:
    """Fork, ``setsid``, fork again (resque-pool's order, no chdir); stdin from /dev/null.
    The original process and the intermediate one exit at once with status 0."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def read_pid(path: str) -> int | None:
    """The pid in ``path``; None when there is no file, 0 when it holds garbage (stale).
    A path that cannot hold a pidfile is a DaemonError (``unix/files.py``)."""
    try:
        return files.read_pid(path)
    except files.UnusablePidfile as error:
        raise DaemonError(f"cannot use pidfile {path}: {error}") from None


def check_pidfile(path: str) -> None:
    """Refuse to start when ``path`` names a live process other than this one."""
    pid = read_pid(path)
    if pid and pid != os.getpid() and pid_alive(pid):
        raise PidfileError(f"Pidfile already exists at {path} and process {pid} is still running.")


class Pidfile:
    """Written atomically (a fresh temporary file + rename, as resqued does) after checking
    for a live owner; removed only by the process that wrote it, and only while it still
    holds its pid, so forked workers and a successor's file are never touched."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid: int | None = None
        self._temporary: tuple[int, str] | None = None

    def prepare(self) -> None:
        """Before detaching: refuse a live owner or a path that cannot hold a pidfile, and
        create the temporary file, which proves the directory is writable."""
        check_pidfile(self.path)
        if self._temporary is not None:
            return
        try:
            _makedirs_for(self.path)
            # A fresh name created with O_EXCL in the same directory (so the rename is
            # atomic): nothing planted at a predictable name can be written through.
            directory, base = os.path.split(self.path)
            self._temporary = tempfile.mkstemp(
                prefix=f".{base}.", suffix=".tmp", dir=directory or "."
            )
        except OSError as error:
            raise _cannot("pidfile", self.path, error) from None

    def write(self) -> None:
        """Write this process's pid (after detaching: the pid is the daemon's)."""
        self.prepare()
        if read_pid(self.path) is not None:
            logger.info("replacing stale pidfile %s", self.path)
        assert self._temporary is not None
        (fd, temporary), self._temporary = self._temporary, None
        pid = os.getpid()
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{pid}\n")
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise _cannot("pidfile", self.path, error) from None
        self.pid = pid

    def discard(self) -> None:
        """Remove the temporary file of a start that failed before ``write()``."""
        if self._temporary is not None:
            (fd, temporary), self._temporary = self._temporary, None
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    def remove(self) -> None:
        if self.pid is None or self.pid != os.getpid():
            return
        with contextlib.suppress(DaemonError):
            if read_pid(self.path) == self.pid:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        self.pid = None


class Redirects:
    """stdout/stderr appended to files, reopened on HUP so that logrotate can move them."""

    def __init__(self, stdout: str | None, stderr: str | None) -> None:
        self.targets = {1: stdout, 2: stderr}
        self._opened: dict[int, int] = {}

    def open(self) -> None:
        """Before detaching: open the files, so that a path that cannot be used stops the
        start visibly instead of killing a daemon nobody watches."""
        for fd, path in self.targets.items():
            if path and fd not in self._opened:
                try:
                    self._opened[fd] = _open_log(path)
                except OSError as error:
                    self.close()
                    raise _cannot("log file", path, error) from None

    def apply(self) -> None:
        """Point stdout/stderr at their files (opened by ``open()``, or now)."""
        self.open()
        opened, self._opened = self._opened, {}
        for fd, log in opened.items():
            _point(fd, log)

    def close(self) -> None:
        opened, self._opened = self._opened, {}
        for log in opened.values():
            os.close(log)

    def reopen(self) -> list[str]:
        """Reopen every file, as resque-pool does (appending to an unmoved file changes
        nothing); returns the paths reopened.

        On HUP a file that cannot be opened (logrotate recreated it with another owner, a
        directory in its place) is logged and the old one kept: a log file must never
        take the manager down."""
        reopened = []
        for fd, path in self.targets.items():
            if not path:
                continue
            try:
                _redirect(fd, path)
            except OSError as error:
                logger.error("could not reopen %s (%s); still writing to the old file", path, error)
            else:
                reopened.append(path)
        return reopened


def _open_log(path: str) -> int:
    _makedirs_for(path)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _point(fd: int, opened: int) -> None:
    """Make ``fd`` (1 or 2) write to ``opened``, which is closed."""
    stream = sys.stdout if fd == 1 else sys.stderr
    with contextlib.suppress(ValueError, OSError):
        stream.flush()
    try:
        os.dup2(opened, fd)
    finally:
        os.close(opened)


def _redirect(fd: int, path: str) -> None:
    _point(fd, _open_log(path))


def reopen_log_handlers() -> list[str]:
    """Reopen every ``logging.FileHandler`` (resque-pool reopens every appending File it
    finds, issue #122); WatchedFileHandler already reopens by itself. Returns the paths."""
    reopened = []
    for reference in list(logging._handlerList):  # noqa: SLF001 (no public registry)
        handler = reference()
        if not isinstance(handler, logging.FileHandler) or handler.stream is None:
            continue
        if isinstance(handler, logging.handlers.WatchedFileHandler):
            continue
        handler.acquire()
        try:
            try:
                stream = handler._open()  # noqa: SLF001
            except OSError as error:
                logger.error(
                    "could not reopen %s (%s); still writing to the old file",
                    handler.baseFilename,
                    error,
                )
                continue
            handler.stream.close()
            handler.stream = stream
            reopened.append(handler.baseFilename)
        finally:
            handler.release()
    return reopened


def reopen_logs(redirects: Redirects | None) -> list[str]:
    """On HUP: every FileHandler, and the --stdout/--stderr files; logs which ones."""
    reopened = reopen_log_handlers()
    if redirects:
        reopened += redirects.reopen()
    if reopened:
        logger.info("reopened log files: %s", ", ".join(reopened))
    else:
        logger.info("no log files to reopen (logging to a terminal or a pipe)")
    return reopened
