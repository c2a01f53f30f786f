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

from resque_pool.unix.process import pid_alive

logger = logging.getLogger(__name__)


class DaemonError(Exception):
    """A file the pool needs (lock, pidfile, log) cannot be used; one line for a person."""


class PidfileError(DaemonError):
    """Another live process owns the pidfile."""


def _makedirs_for(path: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)


def obtain_shared_lock(path: str) -> IO[bytes]:
    """A shared ``flock`` on ``path``, held until this process and every worker forked from
    it exits (the open file description is inherited), so an init script can wait for a
    whole generation with ``flock -x``. Keep the returned file object alive.

    The lock is never truncated, and a symbolic link planted at ``path`` is refused
    (``O_NOFOLLOW``) rather than followed: whatever it points at stays untouched. A FIFO
    or device there is refused too (``O_NONBLOCK`` keeps the open from hanging)."""
    _makedirs_for(path)
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DaemonError(f"lock file {path} is a symbolic link; refusing to use it") from None
        raise
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
    try:
        with open(path) as handle:
            return int(handle.read().strip() or 0)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return 0  # unreadable or garbage: treated as stale, like resque-pool's pid <= 0


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

    def write(self) -> None:
        check_pidfile(self.path)
        if read_pid(self.path) is not None:
            logger.info("replacing stale pidfile %s", self.path)
        _makedirs_for(self.path)
        pid = os.getpid()
        # A fresh name created with O_EXCL in the same directory (so the rename is atomic):
        # nothing planted at a predictable name can be written through.
        directory, base = os.path.split(self.path)
        fd, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory or ".")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{pid}\n")
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self.pid = pid

    def remove(self) -> None:
        if self.pid is None or self.pid != os.getpid():
            return
        if read_pid(self.path) == self.pid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.pid = None


class Redirects:
    """stdout/stderr appended to files, reopened on HUP so that logrotate can move them."""

    def __init__(self, stdout: str | None, stderr: str | None) -> None:
        self.targets = {1: stdout, 2: stderr}

    def apply(self) -> None:
        """Point stdout/stderr at their files (at start-up: an error here is fatal)."""
        for fd, path in self.targets.items():
            if path:
                _redirect(fd, path)

    def reopen(self) -> int:
        """Reopen the files whose path now names another file (or none); returns how many.

        On HUP a file that cannot be opened (logrotate recreated it with another owner, a
        directory in its place) is logged and the old one kept: a log file must never
        take the manager down."""
        reopened = 0
        for fd, path in self.targets.items():
            if not path or not _moved(path, fd):
                continue
            try:
                _redirect(fd, path)
            except OSError as error:
                logger.error("could not reopen %s (%s); still writing to the old file", path, error)
            else:
                reopened += 1
        return reopened


def _redirect(fd: int, path: str) -> None:
    stream = sys.stdout if fd == 1 else sys.stderr
    with contextlib.suppress(ValueError, OSError):
        stream.flush()
    _makedirs_for(path)
    opened = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(opened, fd)
    finally:
        os.close(opened)


def _moved(path: str, fd: int) -> bool:
    try:
        on_disk = os.stat(path)
    except OSError as error:
        return error.errno == errno.ENOENT
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino)


def reopen_log_handlers() -> int:
    """Reopen every ``logging.FileHandler`` (resque-pool reopens every appending File it
    finds, issue #122); WatchedFileHandler already reopens by itself. Returns how many."""
    reopened = 0
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
            reopened += 1
        finally:
            handler.release()
    return reopened


def reopen_logs(redirects: Redirects | None) -> int:
    """On HUP: every FileHandler, and the --stdout/--stderr files that were moved."""
    count = reopen_log_handlers()
    if redirects:
        count += redirects.reopen()
    logger.info("reopened %d log file(s)", count)
    return count
