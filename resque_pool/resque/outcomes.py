"""What a finished job writes: ``stat:processed`` when it succeeded, a failure entry (and
``stat:failed``) when it raised, a failure entry alone when its process died.

The order of writes follows Ruby Resque 3.0 (``Worker#perform``, ``Worker#done_working``,
``Worker#report_failed_job`` in ``lib/resque/worker.rb``).
"""

from __future__ import annotations

import logging
from typing import Any

from resque_pool.resque import failures, packed, wire
from resque_pool.resque.connection import get_redis, key, namespace
from resque_pool.resque.jobs import Job
from resque_pool.resque.reserve import raw_key

logger = logging.getLogger(__name__)


def done_working(worker_id: str, placeholder: bool = False) -> None:
    """Resque's ``done_working`` pipeline; ``placeholder``: the in-flight record was a
    placeholder and our key with the payload's bytes goes too."""

    def commands() -> list[tuple[Any, ...]]:  # built only when not packed yet
        deletes = [("DEL", key("worker", worker_id))]
        if placeholder:
            deletes.append(("DEL", raw_key(worker_id)))
        return [
            *deletes,
            ("INCRBY", key("stat", "processed"), 1),
            ("INCRBY", key("stat", "processed", worker_id), 1),
        ]

    client = get_redis()
    # One write, packed once per worker (resque/packed.py); else the same as a pipeline.
    packed_as = ("done_working", namespace(), worker_id, placeholder)
    if packed.send(client, packed_as, commands) is None:
        pipe = client.pipeline(transaction=False)
        for command in commands():
            pipe.execute_command(*command)
        pipe.execute()


def report_failed_job(worker_id: str, job: Job, exception: BaseException) -> None:
    """A job that raised: failure hooks, failure entry, then ``stat:failed`` (Ruby
    ``report_failed_job``: the entry is written even when a hook raises)."""
    logger.error("%s failed: %s: %s", job.describe(), type(exception).__name__, exception)
    _fail(worker_id, job, exception)
    pipe = get_redis().pipeline(transaction=False)
    pipe.incrby(key("stat", "failed"), 1)
    pipe.incrby(key("stat", "failed", worker_id), 1)
    pipe.execute()


def report_dirty_exit(worker_id: str, job: Job, exception: BaseException) -> None:
    """A job whose process died: a failure entry, but ``stat:failed`` is left alone."""
    logger.error("%s: %s", job.describe(), exception)
    _fail(worker_id, job, exception)


def fail_job(worker_id: str, job: Job, exception: BaseException) -> None:
    """A job whose process died, found after the fact (an in-flight record): the failure
    entry alone."""
    logger.warning("%s: %s", job.describe(), exception)
    _fail(worker_id, job, exception)


def _fail(worker_id: str, job: Job, exception: BaseException) -> None:
    try:
        job.run_failure_hooks(exception)
    except Exception:
        logger.exception("on_failure hook of %s raised", job.class_name)
    if retry_instead_of_failure(worker_id, job, exception):
        return
    get_redis().rpush(key(failures.FAILED), failure_entry(exception, worker_id, job))


def retry_instead_of_failure(worker_id: str, job: Job, exception: BaseException) -> bool:
    """A job with ``@job(retry=...)`` is retried instead of failed, or gives up with one
    failure entry of its own; True when its retry policy took the failure over."""
    from resque_pool.scheduler.retry import handled_failure

    try:
        return handled_failure(worker_id, job, exception)
    except Exception:  # the failure is then recorded as usual: never lost
        logger.exception("could not retry %s", job.describe())
        return False


def failure_entry(
    exception: BaseException, worker_id: str, job: Job, error_suffix: str = ""
) -> str:
    """The failure entry's text, with the payload's own bytes spliced in when they are
    JSON (never decoded and re-encoded: Python would write ``1e999`` as ``Infinity`` or
    refuse it); a payload that is not JSON is kept whole as a JSON string.
    ``error_suffix`` is added to the error text (a retry policy's "gave up after ...")."""
    payload = job.raw if wire.splicable(job.raw) else wire.dumps(job.raw)
    entry = failures.entry(exception, worker_id, job.queue, None)
    if error_suffix:
        entry["error"] = f"{entry['error']}{error_suffix}"
    text = wire.dumps(entry)
    # "failed_at" (a fixed-format time) comes first, so this is the payload's own key.
    return text.replace(',"payload":null,', f',"payload":{payload},', 1)
