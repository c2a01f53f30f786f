"""A forked child that dies with its parent, on Linux.

A job child is forked by its worker; should the worker be SIGKILLed (by an operator, the
OOM killer, a supervisor's stop), the child would run on as an orphan. Under the requeue
policy its job is meanwhile handed to another worker, and then runs twice at the same time.
``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill the child when the thread
that forked it exits, so a worker forks its job children from its main thread. On other
systems there is no such request: an orphaned child finishes its job (see
docs/reliability.md).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None


def prepare() -> bool:
    """Look ``prctl`` up in the parent, before forking, so the child pays nothing for it;
    False where the system has none."""
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        try:
            # The interpreter's own symbols, libc's among them: find_library("c") would run
            # ldconfig in a subprocess, a child a test (or an operator) could mistake for a
            # job child.
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return False
    return _prctl is not None


def die_with_parent(parent_pid: int) -> None:
    """In a freshly forked child: SIGKILL this process when its parent dies. If the parent
    died before the request was made, exit at once (nobody would wait for this child)."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def signal_on_parent_death(signum: int, parent_pid: int) -> bool:
    """Ask the kernel for ``signum`` when the parent (the thread that forked this process)
    dies: a catchable signal, so the process notices at once yet finishes what it is doing.
    False where the system has no such request, or when the parent is already gone (the
    caller checks ``os.getppid()`` as it would without it)."""
    if not prepare():
        return False
    assert _prctl is not None
    _prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    return os.getppid() == parent_pid
