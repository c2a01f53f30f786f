"""What one process may learn about another (its command line; whether it is alive is
``unix/files.py``) and the flush a forked process owes its output before ``os._exit``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterable, Iterator
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


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int | str) -> int | None:
    """A process's resident set in bytes (``/proc/<pid>/statm``; ``"self"`` for this
    one); None when it is gone or cannot be read (or there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """When a running process started, in clock ticks since boot (``/proc/<pid>/stat``
    field 22): with the pid, it names one process even after the pid is reused. None when
    it is gone, or a zombie (it has exited; only its parent has not collected it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from Linux's
    ``/proc/<pid>/task/<tid>/children``; [] where that is not available."""
    return [child for children in tree(pid).values() for child in children]


def tree(pid: int) -> dict[int, list[int]]:
    """``{process: its children}`` for ``pid`` and every process below it (each process
    of the tree is a key), as ``descendants`` reads them."""
    found: dict[int, list[int]] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        children: list[int] = []
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                children.extend(int(part) for part in (task / "children").read_text().split())
        found[current] = children
        pending.extend(child for child in children if child not in found)
    return found


def identity(pid: int) -> tuple[int, int] | None:
    """``(pid, start time)``: one process, even after the kernel hands its pid to another;
    None when it is not running."""
    started = start_time(pid)
    return None if started is None else (pid, started)


def reaped() -> Iterator[tuple[int, int]]:
    """``(pid, exit code)`` of each child that has exited, without waiting: ``waitpid(-1,
    WNOHANG)`` until no exited child is left (a signal's death as ``-signum``)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)
