"""The manager's side of hang detection: one progress file per worker, and the workers whose
main loop stopped moving it (SIGSTOPped, deadlocked) for ``RESQUE_WORKER_HANG_TIMEOUT``.

The file is opened and unlinked before the fork (nothing is left on disk, whatever
happens), the worker gets its descriptor (``worker/progress.py``), and the manager reads
its modification time, which the worker may set into the future while it is busy on
purpose. A hung worker is SIGKILLed; its reaping then follows the usual path (the job child
killed with its group, the job handled by the loss policy, a replacement forked).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time

from resque_pool.unix.files import memory_dir

logger = logging.getLogger(__name__)


class HangWatch:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.files: dict[int, int] = {}  # worker pid -> the manager's descriptor
        self.skip: set[int] = set()

    def open(self) -> int | None:
        """A fresh progress file for the next worker (None when detection is off)."""
        if not self.timeout:
            return None
        fd, path = tempfile.mkstemp(prefix="resque-pool-progress-", dir=memory_dir())
        os.unlink(path)
        return fd

    def started(self, pid: int, fd: int | None) -> None:
        if fd is not None:
            self.files[pid] = fd

    def discard(self, fd: int | None) -> None:
        """A file opened for a fork that failed."""
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def killed(self, pid: int) -> None:
        """Killed for hanging: not reported again while it waits to be reaped."""
        self.skip.add(pid)

    def forget(self, pid: int) -> None:
        self.skip.discard(pid)
        self.discard(self.files.pop(pid, None))

    def fds(self) -> list[int]:
        """Every open progress file, for a new worker to close the ones of its siblings."""
        return list(self.files.values())

    def hung(self) -> list[tuple[int, float]]:
        """Workers whose file did not move for longer than the timeout, with the seconds."""
        if not self.timeout:
            return []
        now = time.time()
        found = []
        for pid, fd in self.files.items():
            if pid in self.skip:
                continue
            try:
                stalled = now - os.fstat(fd).st_mtime
            except OSError:
                continue
            if stalled > self.timeout:
                found.append((pid, stalled))
        return found
