"""What one process may learn about another (its command line; whether it is alive is
``unix/files.py``) and the flush a forked process owes its output before ``os._exit``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path


def command_line(pid: int) -> str | None:
    """The process's command line (its title, for a resque process); ``""`` when the
    process is gone; None when it cannot be told (no ``/proc``, no permission)."""
    try:
        data = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return "" if Path("/proc/self").exists() else None
    except OSError:
        return None
    return data.replace(b"\0", b" ").decode("utf-8", "replace")


def flush_output() -> None:
    """``os._exit`` skips interpreter shutdown: flush log handlers and stdio first, so the
    last log lines of a forked worker or job child are not lost."""
    for handler in logging.getLogger().handlers + logging.getLogger("resque_pool").handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def fork_with_signals_blocked(signals: Iterable[int]) -> tuple[int, set[int]]:
    """``os.fork()`` with ``signals`` blocked across it, so that none reaches a child that
    still runs its parent's handlers. The parent's mask is restored at once; the child gets
    ``(0, the mask to restore)`` and unblocks once its own handlers are in place."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(signals))
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pid, previous
