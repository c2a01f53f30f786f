"""What a worker reads from its environment, as Resque's rake task and worker read it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from resque_pool.conf import settings

DEFAULT_INTERVAL = 5.0
DEFAULT_TERM_TIMEOUT = 4.0


def term_child_enabled() -> bool:
    """``TERM_CHILD`` set (to anything): Resque 1.22+ signal semantics. The pool manager
    reads it through here too, so both sides agree on what QUIT and TERM mean."""
    return bool(os.environ.get("TERM_CHILD"))


@dataclass(frozen=True)
class WorkerOptions:
    interval: float  # seconds between polls; 0 = drain the queues and exit
    fork_per_job: bool
    term_child: bool
    graceful_term: bool  # GRACEFUL_TERM: TERM behaves like QUIT
    pre_shutdown_timeout: float  # RESQUE_PRE_SHUTDOWN_TIMEOUT: wait for the job child
    term_timeout: float  # RESQUE_TERM_TIMEOUT: between TERM and KILL of the job child

    @classmethod
    def from_environment(
        cls, interval: float | str | None = None, fork_per_job: bool | None = None
    ) -> WorkerOptions:
        """Explicit arguments first, then ``INTERVAL`` / ``FORK_PER_JOB``, then defaults."""
        return cls(
            interval=_interval(interval),
            fork_per_job=_fork_per_job(fork_per_job),
            term_child=term_child_enabled(),
            graceful_term=bool(os.environ.get("GRACEFUL_TERM")),
            pre_shutdown_timeout=float(os.environ.get("RESQUE_PRE_SHUTDOWN_TIMEOUT") or 0),
            term_timeout=float(os.environ.get("RESQUE_TERM_TIMEOUT") or DEFAULT_TERM_TIMEOUT),
        )


def _interval(value: float | str | None) -> float:
    if value is None:
        value = os.environ.get("INTERVAL") or DEFAULT_INTERVAL
    interval = float(value)
    if interval < 0:
        raise ValueError(f"interval must be >= 0 seconds, not {value!r}")
    return interval


def _fork_per_job(value: bool | None) -> bool:
    if not hasattr(os, "fork"):
        return False
    if value is not None:
        return bool(value)
    env = os.environ.get("FORK_PER_JOB")
    if env is not None:
        return env != "false"
    return bool(settings.RESQUE_FORK_PER_JOB)
