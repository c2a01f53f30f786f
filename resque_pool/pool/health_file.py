"""The manager's side of the health probe: the file its main loop keeps fresh.

Where the file is and how a probe reads it: ``resque_pool/health.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from typing import Any

from resque_pool.health import health_dir, pid_of
from resque_pool.unix.files import pid_alive

logger = logging.getLogger(__name__)


class HealthFile:
    """The manager's side. Never fatal: a file that cannot be written is logged (once
    until it can be again) and the pool goes on; its probe then answers "no pool"."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.directory = health_dir()
        self.path = os.path.join(self.directory, f"{pid}.json")
        self._written: str | None = None
        self._failing: str | None = None

    def beat(self, state: dict[str, Any]) -> None:
        """The loop came round: rewrite the file when ``state`` changed, else touch it."""
        try:
            text = json.dumps(state, sort_keys=True)
            if text != self._written:
                self._write(text)
            else:
                try:
                    os.utime(self.path)
                except FileNotFoundError:  # removed under us (a tmp cleaner): write again
                    self._write(text)
        except OSError as error:
            if str(error) != self._failing:
                logger.error("could not write the health file %s: %s", self.path, error)
                self._failing = str(error)
            self._written = None
            return
        if self._failing is not None:
            logger.info("the health file %s is written again", self.path)
            self._failing = None

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self._written = None

    def _write(self, text: str) -> None:
        if self._written is None:  # first write (or after an error): the directory too
            _own_directory(self.directory)
            _remove_stale(self.directory)
        # A new file renamed over the old one: a probe never reads half a state.
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{self.pid}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._written = text


def _own_directory(path: str) -> None:
    """Create ``path`` for this user only; refuse one someone else made (``/dev/shm`` is
    writable by everyone, and a file there decides whether a pod is restarted)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory of this user")


def _remove_stale(directory: str) -> None:
    """Files left by managers that died without removing theirs (SIGKILL, OOM)."""
    for name in os.listdir(directory):
        pid = pid_of(name)
        if pid is not None and not pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
