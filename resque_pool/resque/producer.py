"""The producer's side of a job: ``@job``, ``enqueue`` now, and ``enqueue_at`` /
``enqueue_in`` / ``remove_delayed`` later on resque-scheduler's keys (``resque/delayed.py``).

Each runs the job's own hooks as Ruby does (``before_enqueue*``/``after_enqueue*``,
``before_schedule*``/``after_schedule*``) and refuses arguments the job cannot take here,
rather than as a failure in a worker later. The consumer's side (a reserved job and its
hook chain) is ``resque/jobs.py``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError

from resque_pool.conf import settings
from resque_pool.errors import NoQueueError, UnknownJob
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis
from resque_pool.resque.delayed import (
    DelayedJob,
    delayed_push,
    index_key,
    item_for,
    remove_delayed_item,
    to_seconds,
    to_timestamp,
)
from resque_pool.resque.queue_lists import check_queue_name
from resque_pool.resque.registry import JobDefinition, registry, source_of
from resque_pool.resque.retry import as_retry
from resque_pool.resque.wakeup import announce_new_queue, push_job, push_tokens

logger = logging.getLogger(__name__)


def job(
    queue: str | None = None,
    name: str | None = None,
    retry: Any = None,
    requeue_on_loss: bool = True,
    timeout: float | None = None,
) -> Callable[[Any], Any]:
    """Register a function or a class with a static ``perform`` as a job.

    The registered name is ``name`` (a Ruby-style name such as ``"Archive"`` lets Ruby and
    Python share a queue) or ``"<module>.<qualname>"``. The decorated object gains
    ``enqueue(*args)`` and ``job_definition``. ``retry`` is a
    ``resque_pool.scheduler.retry.Retry`` (or an integer limit): see docs/scheduling.md.
    ``requeue_on_loss=False`` keeps
    ``RESQUE_REQUEUE_DIRTY_JOBS`` from running the job again when its process died under
    it (for a job where running twice is worse than not running at all).
    ``timeout`` (seconds) ends a run that takes longer as a ``JobTimeout`` failure; it wins
    over the worker's limit and ``RESQUE_JOB_TIMEOUT`` (see docs/worker.md).
    """
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError(f"@job(timeout=...) must be a positive number of seconds, not {timeout!r}")
    if retry is not None:
        retry = as_retry(retry)

    def decorate(target: Any) -> Any:
        if inspect.isclass(target) and not callable(getattr(target, "perform", None)):
            raise TypeError(f"job class {target.__qualname__} needs a perform method")
        if not inspect.isclass(target) and not callable(target):
            raise TypeError(f"@job needs a function or a class, not {target!r}")
        definition = JobDefinition(
            name=name or source_of(target),
            queue=queue or getattr(target, "queue", None),
            target=target,
            retry=retry,
            requeue_on_loss=requeue_on_loss,
            timeout=timeout,
        )
        registry.add(definition)
        target.job_definition = definition
        target.enqueue = lambda *args: enqueue(definition, *args)
        target.enqueue_to = lambda to_queue, *args: enqueue(definition, *args, queue=to_queue)
        _add_delayed_methods(target, definition)
        return target

    return decorate


def _add_delayed_methods(target: Any, definition: JobDefinition) -> None:
    """``enqueue_at(when, *args)``, ``enqueue_in(delay, *args)`` and
    ``remove_delayed(*args)`` on a decorated job, as resque-scheduler adds them."""
    target.enqueue_at = lambda when, *args: enqueue_at(when, definition, *args)
    target.enqueue_in = lambda delay, *args: enqueue_in(delay, definition, *args)
    target.remove_delayed = lambda *args: remove_delayed(definition, *args)


@dataclass(frozen=True)
class EnqueuedJob:
    queue: str
    payload: str
    # Replicas that acknowledged the push (Redis WAIT), when the caller asked for any.
    replicas: int | None = None


def _definition_for(job_ref: Any) -> JobDefinition | None:
    if isinstance(job_ref, JobDefinition):
        return job_ref
    if isinstance(job_ref, str):
        return registry.get(job_ref)
    definition = getattr(job_ref, "job_definition", None)
    if isinstance(definition, JobDefinition):
        return definition
    raise TypeError(f"enqueue() takes a registered job or its name, not {job_ref!r}")


def unknown_job(name: Any, how_to_push: str) -> UnknownJob:
    """The error for a name nobody registered here; ``how_to_push`` names the caller's way
    of giving a queue (``pass queue=`` in Python, ``give --queue QUEUE`` in the shell)."""
    return UnknownJob(
        f"no job is registered as {name!r}; register it with @job or {how_to_push} to push "
        f"it for another worker (registered: {', '.join(registry.names()) or 'none'})"
    )


def resolve(job_ref: Any, queue: str | None) -> tuple[JobDefinition | None, str, str]:
    """The definition (None for a name only Ruby workers know), the class name and the
    queue a job goes to, checked: shared by ``enqueue`` and the scheduler's ``enqueue_at``."""
    definition = _definition_for(job_ref)
    if definition is None and queue is None:
        raise unknown_job(job_ref, "pass queue=")
    class_name = definition.name if definition else str(job_ref)
    target_queue = queue if queue is not None else (definition.queue if definition else None)
    if target_queue is None:
        raise NoQueueError(f"job {class_name!r} has no queue; give @job(queue=...) or queue=")
    try:
        check_queue_name(target_queue)
    except ValidationError as error:
        raise ValueError(f"{class_name}: {error.messages[0]}") from None
    return definition, class_name, target_queue


def enqueue(
    job_ref: Any, *args: Any, queue: str | None = None, wait_replicas: int | None = None
) -> EnqueuedJob | None:
    """Push a job, as ``Resque.enqueue``/``enqueue_to`` do.

    ``job_ref`` is a decorated job, its definition, or a name. A name that is not registered
    here (a job only Ruby workers know) can be pushed when ``queue`` is given. Returns what
    was pushed, or None when a ``before_enqueue*`` hook returned ``False``.

    ``wait_replicas`` (default ``RESQUE_ENQUEUE_WAIT_REPLICAS``) waits, with Redis's
    ``WAIT`` and at most ``RESQUE_ENQUEUE_WAIT_TIMEOUT``, until that many replicas have the
    job; how many did is ``EnqueuedJob.replicas`` (fewer is logged, not raised: the job is
    on the master either way). See docs/scaling.md for what that buys in a failover.
    """
    definition, class_name, target_queue = resolve(job_ref, queue)
    try:
        payload = wire.job_payload(class_name, list(args))
    except (TypeError, ValueError) as error:
        raise ValueError(f"arguments of {class_name} must be JSON-serialisable: {error}") from None
    if definition is not None:
        # Refused here rather than as a failure in the worker, later and elsewhere.
        definition.check_arguments(list(args))
    if definition is not None:
        # Every before hook runs, then any ``False`` cancels (Resque's enqueue_to).
        results = [hook(*args) for hook in definition.hooks("before_enqueue")]
        if any(result is False for result in results):
            return None
    if wait_replicas is None:
        wait_replicas = settings.RESQUE_ENQUEUE_WAIT_REPLICAS
    pipe = get_redis().pipeline(transaction=False)
    position = push_job(pipe, target_queue, payload)
    if wait_replicas:
        # In the same pipeline, so on the same connection: WAIT counts the replicas that
        # have this connection's writes. (Not inside MULTI or a script, where it does not
        # block.)
        pipe.execute_command("WAIT", wait_replicas, _wait_timeout_ms())
    replies = pipe.execute()
    announce_new_queue(replies, position)
    acknowledged = int(replies[-1]) if wait_replicas else None
    if acknowledged is not None:
        _log_unacknowledged(class_name, target_queue, acknowledged, wait_replicas)
    if definition is not None:
        for hook in definition.hooks("after_enqueue"):
            hook(*args)
    return EnqueuedJob(queue=target_queue, payload=payload, replicas=acknowledged)


def acknowledge_push(what: str, queue: str, replicas: int) -> int:
    """After a transaction that pushed ``what`` to ``queue``: Redis's ``WAIT`` until
    ``replicas`` replicas have it, at most ``RESQUE_ENQUEUE_WAIT_TIMEOUT``; how many did
    (fewer is logged, as by ``enqueue()``)."""
    # WAIT counts the writes of its own connection, and a transaction's connection goes
    # back to the pool at EXEC. One more wake-up token for the queue, written after it on
    # WAIT's connection, stands for it: replicas apply the master's writes in order, so a
    # replica that has the token has the transaction. (The extra token may wake an idle
    # worker for nothing.)
    pipe = get_redis().pipeline(transaction=False)
    push_tokens(pipe, queue)
    pipe.execute_command("WAIT", replicas, _wait_timeout_ms())
    acknowledged = int(pipe.execute()[-1])
    _log_unacknowledged(what, queue, acknowledged, replicas)
    return acknowledged


def _wait_timeout_ms() -> int:
    return max(1, int(settings.RESQUE_ENQUEUE_WAIT_TIMEOUT * 1000))


def _log_unacknowledged(what: str, queue: str, acknowledged: int, replicas: int) -> None:
    if acknowledged < replicas:
        logger.warning(
            "%s pushed to %s, but only %d of %d replicas acknowledged it within %gs",
            what,
            queue,
            acknowledged,
            replicas,
            settings.RESQUE_ENQUEUE_WAIT_TIMEOUT,
        )


def _schedule_hooks_allow(definition: JobDefinition | None, args: tuple[Any, ...]) -> bool:
    """resque-scheduler's ``before_schedule*`` hooks: all run, any ``False`` cancels."""
    if definition is None:
        return True
    results = [hook(*args) for hook in definition.hooks("before_schedule")]
    return not any(result is False for result in results)


def _after_schedule(definition: JobDefinition | None, args: tuple[Any, ...]) -> None:
    if definition is not None:
        for hook in definition.hooks("after_schedule"):
            hook(*args)


def enqueue_at(
    when: datetime | int | float, job_ref: Any, *args: Any, queue: str | None = None
) -> DelayedJob | EnqueuedJob | None:
    """Run ``job_ref(*args)`` at ``when``, as ``Resque.enqueue_at_with_queue``.

    ``job_ref`` is a decorated job, its definition or a registered name; a name no process
    here registers needs ``queue``. A time not after the current second is enqueued at once
    (an ``EnqueuedJob``, as Ruby does); otherwise the item goes into the delayed queue (a
    ``DelayedJob``). None when a ``before_schedule*`` (or, at once, ``before_enqueue*``)
    hook cancelled it.
    """
    definition, class_name, target_queue = resolve(job_ref, queue)
    timestamp = to_timestamp(when)
    try:
        item = item_for(class_name, list(args), target_queue)
    except (TypeError, ValueError) as error:
        raise ValueError(f"arguments of {class_name} must be JSON-serialisable: {error}") from None
    if definition is not None:
        definition.check_arguments(list(args))  # refused now, not when it runs
    if not _schedule_hooks_allow(definition, args):
        return None
    if timestamp <= int(time.time()):
        result: DelayedJob | EnqueuedJob | None = enqueue(
            definition or class_name, *args, queue=target_queue
        )
    else:
        delayed_push(timestamp, item)
        result = DelayedJob(timestamp=timestamp, queue=target_queue, item=item)
    _after_schedule(definition, args)
    return result


def enqueue_in(
    delay: timedelta | int | float, job_ref: Any, *args: Any, queue: str | None = None
) -> DelayedJob | EnqueuedJob | None:
    """``enqueue_at(now + delay, …)``; ``delay`` in seconds or a timedelta."""
    return enqueue_at(time.time() + to_seconds(delay), job_ref, *args, queue=queue)


def remove_delayed(job_ref: Any, *args: Any, queue: str | None = None) -> int:
    """Remove the delayed ``job_ref(*args)`` scheduled for ``queue`` (default: the job's
    queue), at every time it is scheduled; returns how many were removed."""
    _definition, class_name, target_queue = resolve(job_ref, queue)
    return remove_delayed_item(item_for(class_name, list(args), target_queue))


def scheduled_at(job_ref: Any, *args: Any, queue: str | None = None) -> list[datetime]:
    """When ``job_ref(*args)`` is scheduled (UTC), earliest first."""
    _definition, class_name, target_queue = resolve(job_ref, queue)
    members = get_redis().smembers(index_key(item_for(class_name, list(args), target_queue)))
    stamps = sorted(int(m.rpartition(":")[2]) for m in members if m.rpartition(":")[2].isdigit())
    return [datetime.fromtimestamp(stamp, UTC) for stamp in stamps]
