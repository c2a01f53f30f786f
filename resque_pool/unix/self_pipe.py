"""A self-pipe that lets a signal handler wake a main loop sleeping in ``select()``.

A Python signal handler runs between bytecodes of the main thread; a ``select()`` it
interrupts is retried (PEP 475), so the handler must make the pipe readable for the
sleep to end early.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Iterable


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
        return self.read_fd in self.wait_beside((), timeout)

    def wait_beside(self, fds: Iterable[int], timeout: float) -> set[int]:
        """Sleep up to ``timeout`` seconds or until a signal or one of ``fds`` (a socket)
        is readable; the readable descriptors, this pipe's read end among them when a
        signal woke us (its bytes are consumed)."""
        readable, _, _ = select.select([self.read_fd, *fds], [], [], max(timeout, 0))
        if self.read_fd in readable:
            with contextlib.suppress(OSError):
                while os.read(self.read_fd, 512):
                    pass
        return set(readable)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
