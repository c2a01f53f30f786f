"""A worker's limits: how long one job may run, and when the worker recycles itself.

Time limits: with fork per job the worker (the parent) watches a ``Deadline`` and ends the
job child past it (TERM, then KILL after ``RESQUE_TERM_TIMEOUT``); the child's TERM handler
raises ``JobTimeout`` inside the job when the deadline has passed, so the job may clean up
and the child records the failure itself. In-process, ``alarm()`` raises the same
``JobTimeout`` through ``SIGALRM``.

Recycling: ``Recycler`` tells the loop when the worker has run its share of jobs or grown
past its memory limit; the worker then exits with ``RECYCLE_EXIT_CODE`` so its manager
replaces it at once, without backoff. Each worker draws its own share of both limits (as
gunicorn's ``max_requests_jitter``), so the workers of a pool started together, running
the same jobs, do not all recycle together.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import resource
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from resque_pool.conf import settings
from resque_pool.errors import JobTimeout
from resque_pool.resque.jobs import Job, registry
from resque_pool.unix.process import rss_bytes

logger = logging.getLogger(__name__)

# The exit status of a worker that recycles itself (os.EX_TEMPFAIL, "try again"): the
# manager replaces it at once and a supervisor running resque_work restarts it.
RECYCLE_EXIT_CODE = 75
# A worker's own max jobs is the limit plus up to this fraction of it, so the workers of a
# pool started together do not all recycle together.
JOBS_JITTER = 0.1
# A worker's own memory threshold is the limit less up to this fraction of it: workers that
# grow alike cross their thresholds at different jobs, and none ever goes above the limit.
MEMORY_JITTER = 0.1


@dataclass(frozen=True)
class Limits:
    """One worker's limits; None means none. Explicit values (a ``WorkerCount`` row, the
    ``resque_work`` options) win over the settings."""

    job_timeout: float | None = None
    max_jobs: int | None = None
    max_memory_mb: float | None = None

    @classmethod
    def resolve(
        cls,
        job_timeout: float | None = None,
        max_jobs: int | None = None,
        max_memory_mb: float | None = None,
    ) -> Limits:
        return cls(
            job_timeout=_first(job_timeout, settings.RESQUE_JOB_TIMEOUT),
            max_jobs=_first(max_jobs, settings.RESQUE_WORKER_MAX_JOBS),
            max_memory_mb=_first(max_memory_mb, settings.RESQUE_WORKER_MAX_MEMORY_MB),
        )

    def timeout_for(self, job: Job) -> float | None:
        """The job's own ``@job(timeout=...)``, else this worker's limit."""
        definition = registry.get(job.class_name) if job.class_name else None
        if definition is not None and definition.timeout is not None:
            return float(definition.timeout)
        return float(self.job_timeout) if self.job_timeout else None


def _first(value: Any, default: Any) -> Any:
    return value if value is not None else default


# -- time limits ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """When a job's time is up, on the monotonic clock (the same clock in the job child)."""

    seconds: float
    at: float

    @classmethod
    def start(cls, seconds: float | None) -> Deadline | None:
        return None if seconds is None else cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.remaining() <= 0


def install_child_deadline(deadline: Deadline, term_child: bool) -> None:
    """In the job child: the TERM its parent sends past the deadline raises ``JobTimeout``
    in the job (once; the parent's KILL is the backstop). Any other TERM keeps its meaning:
    TERM_CHILD's ``TermException``, else the default death."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        if deadline.passed():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise JobTimeout.after(deadline.seconds)
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)


@contextlib.contextmanager
def alarm(seconds: float | None) -> Iterator[None]:
    """In-process: raise ``JobTimeout`` in the running job after ``seconds`` (SIGALRM).

    Only in the main thread (Python runs signal handlers there); a job that sets its own
    alarms replaces ours, and a job stuck in C code that never returns to Python is not
    interrupted: fork per job is the mode that always ends a job."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise JobTimeout.after(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- recycling ------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set size now, in MiB (its peak where /proc is missing)."""
    resident = rss_bytes("self")
    if resident is not None:
        return resident / 1048576
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1048576 if sys.platform == "darwin" else peak / 1024


class Recycler:
    """Counts a worker's jobs and says, after each, whether it is time to recycle."""

    def __init__(self, limits: Limits, rng: random.Random | None = None) -> None:
        draw = rng or random
        self.max_jobs: int | None = None
        if limits.max_jobs:
            jitter = int(limits.max_jobs * JOBS_JITTER)
            self.max_jobs = limits.max_jobs + draw.randint(0, jitter)
        self.memory_limit_mb = limits.max_memory_mb or None
        # This worker's own threshold, in (1 - MEMORY_JITTER) * limit .. limit.
        self.max_memory_mb: float | None = None
        if self.memory_limit_mb:
            self.max_memory_mb = self.memory_limit_mb * (1 - draw.uniform(0, MEMORY_JITTER))
        self.jobs = 0

    def job_done(self) -> str | None:
        """Why the worker should recycle now, or None."""
        self.jobs += 1
        if self.max_jobs is not None and self.jobs >= self.max_jobs:
            return f"ran {self.jobs} job{'s' if self.jobs != 1 else ''} (limit {self.max_jobs})"
        if self.max_memory_mb:
            rss = rss_mb()
            if rss > self.max_memory_mb:
                return (
                    f"uses {rss:.0f} MB (limit {self.max_memory_mb:.1f} MB: "
                    f"{self.memory_limit_mb:g} MB less jitter)"
                )
        return None
