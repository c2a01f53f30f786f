"""What a finished job writes, each outcome in one atomic step with the removal of the
job's in-flight record (``worker:<id>``).

- done: ``done_working``: the record goes, ``stat:processed`` counts the job;
- a failure: the failure entry (or, for a job with a retry policy, its next attempt or its
  give-up entry), ``stat:failed`` when the job raised, then what ``done_working`` writes.

The order of the writes follows Ruby Resque 3.0 (``Worker#perform``, ``report_failed_job``,
``done_working`` in ``lib/resque/worker.rb``), but where Resque sends them as separate
commands and pipelines, each outcome here is one ``MULTI``/``EXEC``. That is what keeps a
job from vanishing: Redis refuses a transaction whole when it refuses one of its commands
(out of memory, read-only, see ``resque/outages.py``), so a refused outcome leaves the
in-flight record in place, for the worker to write the outcome again later or, should the
worker die meanwhile, for the loss policy (``resque/in_flight.py``). A record removed
without its outcome would be a job that is neither queued, nor failed, nor done.

Each outcome also counts, inside its own transaction, what the metrics view shows per job
class (``resque/job_metrics.py``): a job's duration with ``done_working``, a failure, retry
or give-up with the failure. No outcome pays a round trip for it.

A failure is written only while the job's in-flight record is still there (``WATCH``):
if the manager or a prune dealt with the job first (its worker looked dead), nothing more
is written. So counting a retry attempt, pushing the retry and removing the record happen
once per attempt, whoever gets there first: one retry lineage however processes die.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from resque_pool import failure_backends
from resque_pool.resque import delayed, failures, job_metrics, packed, records, wire
from resque_pool.resque.connection import get_redis, key, namespace
from resque_pool.resque.jobs import Job, registry
from resque_pool.resque.reserve import raw_key
from resque_pool.resque.retry import Retry, call_quietly, retry_key
from resque_pool.resque.wakeup import push_job

logger = logging.getLogger(__name__)

# What record_failure did: wrote the failure entry, pushed a retry, wrote a retry policy's
# give-up entry, or nothing because the job's record was gone (someone else settled it).
FAILED, RETRIED, GAVE_UP, GONE = "failed", "retried", "gave up", "gone"
# The outcomes counted per job class in <ns>:metrics:jobs, by their field's event name.
_COUNTED_AS = {RETRIED: "retried", GAVE_UP: "gave_up"}


def done_working(
    worker_id: str, placeholder: bool = False, duration: tuple[str | None, float] | None = None
) -> None:
    """Resque's ``done_working`` as one transaction; ``placeholder``: the in-flight record
    was a placeholder and our key with the payload's bytes goes too. ``duration``: the
    job's class and seconds, added to the duration histogram in the same transaction
    (``resque/job_metrics.py``: two ``HINCRBY``s, no round trip of their own)."""
    label = bucket = None
    if duration is not None:
        label = job_metrics.class_label(duration[0])
        bucket = job_metrics.bucket_command(label, duration[1])

    def commands() -> list[tuple[Any, ...]]:  # built only when not packed yet
        deletes = [key("worker", worker_id)]
        if placeholder:
            deletes.append(raw_key(worker_id))
        return [
            ("MULTI",),
            ("DEL", *deletes),
            ("INCRBY", key("stat", "processed"), 1),
            ("INCRBY", key("stat", "processed", worker_id), 1),
            *((bucket,) if bucket else ()),
        ]

    # Only the histogram's sum changes from job to job: packed each time, with the EXEC.
    tail = [job_metrics.sum_command(label, duration[1])] if label and duration else []
    tail.append(("EXEC",))
    client = get_redis()
    # One write, packed once per worker and bucket (resque/packed.py); else redis-py's
    # transaction.
    packed_as = ("done_working", namespace(), worker_id, placeholder, bucket)
    replies = packed.send(client, packed_as, commands, tail)
    if replies is None:
        pipe = client.pipeline(transaction=True)
        for command in [*commands()[1:], *tail[:-1]]:
            pipe.execute_command(*command)
        pipe.execute()
        return
    for reply in replies[-1] or ():  # EXEC ran: a command that failed inside it raised
        if isinstance(reply, Exception):
            raise reply


def job_failed(job: Job, exception: BaseException, level: int = logging.ERROR) -> None:
    """What happens once per failed job before its outcome is written: the log line and
    the ``on_failure`` hooks (a hook that raises is logged; the failure is recorded all
    the same, as Ruby's ``report_failed_job`` does)."""
    logger.log(level, "%s failed: %s: %s", job.describe(), type(exception).__name__, exception)
    try:
        job.run_failure_hooks(exception)
    except Exception:
        logger.exception("on_failure hook of %s raised", job.class_name)


def record_failure(
    worker_id: str,
    job: Job,
    exception: BaseException,
    *,
    counted: bool = True,
    processed: bool = True,
    record: str | None = None,
    event: str | None = None,
) -> str:
    """Write ``job``'s failure and remove its in-flight record, in one transaction.

    ``counted``: add to ``stat:failed`` (a job that raised; not a ``DirtyExit``, as in
    Resque). ``processed``: add to ``stat:processed`` as ``done_working`` does (the job's
    own worker; not a job found after its worker died). ``record``: write only while
    ``worker:<id>`` holds exactly these bytes (None: anything). ``event``: one more of
    ``resque/job_metrics.py``'s per-class counts to add in the transaction (the loss
    policy's ``interrupted``). Returns ``FAILED``,
    ``RETRIED``, ``GAVE_UP`` or ``GONE``. Redis refusing the write raises its error and
    changes nothing."""
    definition = registry.get(job.class_name or "")
    policy: Retry | None = getattr(definition, "retry", None) if definition else None
    args = list(job.args)
    worker_key = key("worker", worker_id)
    counter = retry_key(definition.name, args) if policy is not None else None
    result: dict[str, Any] = {}

    def settle(pipe: Any) -> None:
        current = pipe.get(worker_key)
        if current is None or (record is not None and current != record):
            result["outcome"] = GONE
            pipe.multi()
            return
        attempt = _next_attempt(pipe.get(counter)) if counter is not None else 0
        pipe.multi()
        if policy is not None and policy.retries(exception, attempt):
            result["outcome"], result["attempt"] = RETRIED, attempt
            result["delay"] = delay = policy.delay_for(attempt)
            result["queue"] = queue = policy.queue or job.queue or definition.queue
            pipe.set(counter, attempt)
            if policy.expire_key_after is not None:
                pipe.expire(counter, max(1, int(delay + policy.expire_key_after)))
            _push_retry(pipe, definition.name, args, queue, delay)
        elif policy is not None:
            result["outcome"], result["attempt"] = GAVE_UP, attempt
            attempts = attempt + 1
            noun = "attempt" if attempts == 1 else "attempts"
            pipe.delete(counter)
            result["entry"] = failure_entry(
                exception, worker_id, job, f" (gave up after {attempts} {noun})"
            )
            pipe.rpush(key(failures.FAILED), result["entry"])
        else:
            result["outcome"] = FAILED
            result["entry"] = failure_entry(exception, worker_id, job)
            pipe.rpush(key(failures.FAILED), result["entry"])
        if counted:
            pipe.incrby(key("stat", "failed"), 1)
            pipe.incrby(key("stat", "failed", worker_id), 1)
            job_metrics.count_event(pipe, job.class_name, "failed")
        if result["outcome"] in _COUNTED_AS:  # per class, for the metrics view
            job_metrics.count_event(pipe, job.class_name, _COUNTED_AS[result["outcome"]])
        if event is not None:
            job_metrics.count_event(pipe, job.class_name, event)
        pipe.delete(worker_key, raw_key(worker_id))
        if processed:
            pipe.incrby(key("stat", "processed"), 1)
            pipe.incrby(key("stat", "processed", worker_id), 1)

    watches = [worker_key] if counter is None else [worker_key, counter]
    get_redis().transaction(settle, *watches)
    outcome = result["outcome"]
    if outcome == RETRIED:
        attempt = result["attempt"]
        call_quietly(policy.on_retry, exception, attempt + 1, *args)
        logger.info(
            "%s failed (%s: %s); retry %d in %.1fs on %s",
            job.describe(),
            type(exception).__name__,
            exception,
            attempt + 1,
            result["delay"],
            result["queue"],
        )
    elif outcome == GAVE_UP:
        call_quietly(policy.on_give_up, exception, result["attempt"] + 1, *args)
    if outcome != GONE:
        # Only now, after the transaction: a write Redis refused (and the caller tries
        # again) has told no backend, so each failure reaches each backend once.
        failure_backends.report(
            failure_backends.Failure(
                job_class=records.job_class(job.payload),
                class_name=job.class_name,
                args=args,
                queue=job.queue,
                worker=worker_id,
                attempt=result.get("attempt", 0) + 1,
                outcome=outcome,
                exception=exception,
                payload=job.raw,
                entry=result.get("entry"),
            )
        )
    return outcome


def _next_attempt(counter_value: str | None) -> int:
    """resque-retry's ``retry_attempt`` for the attempt that just failed: 0 for the first
    (no counter yet), else one more than the counter."""
    if counter_value is None:
        return 0
    try:
        return int(counter_value) + 1
    except ValueError:  # someone else's value in our key: start counting again
        return 0


def _push_retry(pipe: Any, class_name: str, args: list[Any], queue: str, delay: float) -> None:
    """The next attempt, on ``pipe``: at once on its queue, or through the delayed queue.
    (Not through ``enqueue``/``enqueue_at``: the push must be part of the outcome's
    transaction, so a retry is not the job's enqueue and runs no enqueue hooks.)"""
    now = time.time()
    timestamp = int(now + delay)
    if timestamp <= int(now):  # due within this second: as enqueue_at enqueues it now
        push_job(pipe, queue, wire.job_payload(class_name, args))
    else:
        delayed.queue_delayed_push(pipe, timestamp, delayed.item_for(class_name, args, queue))


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
