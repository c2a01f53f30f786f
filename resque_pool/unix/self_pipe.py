"""A self-pipe that lets a signal handler wake a main loop sleeping in ``select()``.

A Python signal handler runs between bytecodes of the main thread; a ``select()`` it
interrupts is retried (PEP 475), so the handler must make the pipe readable for the
sleep to end early.
"""

from __future__ import annotations

import contextlib
import os
import select


class Waker:
    """A self-pipe: a signal handler writes a byte, the main loop's select() returns."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        for fd in (self.read_fd, self.write_fd):
            os.set_blocking(fd, False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # pipe full: a wake-up is already pending
            os.write(self.write_fd, b"\0")

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if woken."""
        readable, _, _ = select.select([self.read_fd], [], [], max(timeout, 0))
        if not readable:
            return False
        with contextlib.suppress(OSError):
            while os.read(self.read_fd, 512):
                pass
        return True

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
