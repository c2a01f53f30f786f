"""Failure backends: where a job's failure goes besides the failed list, as Resque's
``Resque::Failure::Multiple`` sends each failure to Redis and to Airbrake or others.

``RESQUE_FAILURE_BACKENDS`` lists dotted paths of ``Backend`` subclasses; the first is
always ``RedisFailedList``, the failed list itself. The failed list is not written here:
its entry is part of the job's outcome transaction (``resque/outcomes.py``), so it never
depends on another backend. The others, and the ``resque_pool.signals.job_failure``
signal, are told by ``report`` **after** that transaction succeeded, once: when Redis
refuses the write and the worker or job child tries again, nothing is sent until the try
that succeeds. A backend that raises is logged; the next one still runs.

What each backend sees: exactly the entries the failed list gets (a job that raised, a
``DirtyExit``, a retry policy's give-up). An attempt that a retry policy retries writes no
entry and goes only to the signal (``outcome="retried"``), as resque-retry's
``MultipleWithRetrySuppression`` keeps retried attempts from Airbrake.

Processes end with ``os._exit`` (a job child, a pool worker), which skips ``atexit``:
``flush`` gives each backend its chance to send what it queued (Sentry's transport sends
from a thread) first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from resque_pool.conf import settings
from resque_pool.signals import job_failure

logger = logging.getLogger(__name__)

REDIS = "resque_pool.failure_backends.RedisFailedList"
# How long a process about to exit waits for its backends to send what they queued.
FLUSH_TIMEOUT = 5.0


@dataclass(frozen=True)
class Failure:
    """One failure, as the backends and the signal receive it.

    ``job_class`` is the class resque-web shows (a wrapper's wrapped class: ActiveJob's
    ``job_class``, a Django task's path), ``class_name`` the payload's own ``class``.
    ``attempt`` counts from 1 (always 1 without a retry policy). ``outcome`` is
    ``"failed"``, ``"gave up"`` or ``"retried"``. ``entry`` is the failed list's entry
    as written (None for a retried attempt). ``payload`` is the job's raw bytes."""

    job_class: str | None
    class_name: str | None
    args: list[Any]
    queue: str
    worker: str
    attempt: int
    outcome: str
    exception: BaseException
    payload: str
    entry: str | None = field(default=None, repr=False)


class Backend:
    """Subclass and name it in ``RESQUE_FAILURE_BACKENDS``. One instance per process,
    made when the process reports its first failure."""

    def save(self, failure: Failure) -> None:
        raise NotImplementedError

    def flush(self, timeout: float) -> None:
        """Send what ``save`` queued, waiting at most ``timeout`` seconds; called before
        the process exits (a job child right after its job)."""


class RedisFailedList(Backend):
    """The failed list (``<ns>:failed``), Resque's ``Failure::Redis``. Its entry is
    written with the job's outcome in one transaction; this class only holds its place
    first in the setting."""

    def save(self, failure: Failure) -> None:
        pass


_backends: list[tuple[str, Backend]] | None = None


def backends() -> list[tuple[str, Backend]]:
    """The backends after the failed list, made once per process (a path that cannot be
    imported is logged and left out: ``manage.py check`` reports it before a pool starts)."""
    global _backends
    if _backends is None:
        made = []
        for path in list(settings.RESQUE_FAILURE_BACKENDS)[1:]:
            try:
                made.append((path, import_string(path)()))
            except Exception:
                logger.exception("failure backend %s cannot be made; left out", path)
        _backends = made
    return _backends


def report(failure: Failure) -> None:
    """Tell the backends (unless the attempt is retried) and the signal's receivers about
    a failure whose outcome Redis took. Never raises."""
    if failure.outcome != "retried":
        for path, backend in backends():
            try:
                backend.save(failure)
            except Exception:
                logger.exception(
                    "failure backend %s raised; the failure is in the failed list all the same",
                    path,
                )
    # send_robust: a receiver that raises is logged by Django and the others still run.
    job_failure.send_robust(sender=Failure, failure=failure)


def flush(timeout: float = FLUSH_TIMEOUT) -> None:
    """Before ``os._exit``: let every backend made in this process send what it queued."""
    for path, backend in _backends or ():
        try:
            backend.flush(timeout)
        except Exception:
            logger.exception("failure backend %s could not flush", path)


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _backends
    if setting == "RESQUE_FAILURE_BACKENDS":
        _backends = None


setting_changed.connect(_setting_changed, dispatch_uid="resque_pool.failure_backends")
