"""Exceptions, each named the way it appears in a failure entry's ``exception`` field."""

from __future__ import annotations


class ResqueError(Exception):
    """Base class for django-resque-pool's own errors."""


class DirtyExit(ResqueError):
    """A job whose worker or child died before it finished (Ruby: ``Resque::DirtyExit``)."""

    resque_name = "Resque::DirtyExit"


class PruneDeadWorkerDirtyExit(DirtyExit):
    resque_name = "Resque::PruneDeadWorkerDirtyExit"

    @classmethod
    def message_for(cls, worker_id: str, job_class: str | None) -> str:
        """Ruby's wording (``errors.rb``), also used when a manager cleans up a worker."""
        return (
            f"Worker {worker_id} did not gracefully exit while processing "
            f"{job_class or '<Unknown Job>'}"
        )


class TermException(ResqueError):
    """Raised inside a job when TERM_CHILD asks it to stop (Ruby: ``Resque::TermException``)."""

    resque_name = "Resque::TermException"
    # True when the worker raised it because it is stopping (a TERM), not the job itself:
    # with RESQUE_REQUEUE_DIRTY_JOBS such a job goes back to its queue, as a killed one does.
    stopping = False

    @classmethod
    def for_stop(cls) -> TermException:
        error = cls("SIGTERM")
        error.stopping = True
        return error


def interrupted_by_stop(error: BaseException) -> bool:
    """True when ``error`` is, or was raised while handling, the ``TermException`` a
    stopping worker raised into its job."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, TermException) and current.stopping:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class JobTimeout(ResqueError):
    """A job that ran past its time limit (``@job(timeout=...)``, a queue list's limit or
    ``RESQUE_JOB_TIMEOUT``) and was ended; the message names the limit. Recorded as
    ``resque_pool.errors.JobTimeout``, counted in ``stat:failed``, never requeued."""

    @classmethod
    def after(cls, seconds: float) -> JobTimeout:
        return cls(f"job exceeded its time limit of {seconds:g}s")


class NoQueueError(ResqueError):
    """A worker or a job without a queue."""

    resque_name = "Resque::NoQueueError"


class DontPerform(ResqueError):
    """Raise in a ``before_perform*`` hook to skip the job quietly (Ruby: ``DontPerform``)."""

    resque_name = "Resque::Job::DontPerform"


class JobError(ResqueError):
    """A payload the worker cannot run; recorded as a failure, never fatal to the worker."""


class MalformedPayload(JobError):
    """The queue entry is not a JSON object with a string ``class`` and a list ``args``."""


class UnknownJob(JobError):
    """The payload names a job that is not registered in this process."""


class BadArguments(JobError):
    """The payload's ``args`` do not fit the job's ``perform`` signature."""


class FailureNotFound(ResqueError):
    """No failure entry at that index (it was removed or the list shrank)."""


class FailureMoved(FailureNotFound):
    """The entry at that index is no longer the one the caller saw (ids are indexes)."""


def exception_name(exception: BaseException) -> str:
    """The ``exception`` field for a failure entry: Ruby names for Resque's own errors,
    plain names for builtins, dotted paths for everything else."""
    explicit = getattr(type(exception), "resque_name", None)
    if explicit:
        return explicit
    cls = type(exception)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
