"""The loss policy: what becomes of a job whose process died under it (its in-flight
record, ``worker:<id>``, is read back by ``resque/reserve.py``, which writes it).

Resque's answer is a ``DirtyExit`` failure. With ``RESQUE_REQUEUE_DIRTY_JOBS`` the job's
exact bytes go back to the **head** of its queue instead (it was first in line once), at
most ``RESQUE_MAX_INTERRUPTIONS`` times in all: a job that keeps taking its process down
ends as a ``DirtyExit`` failure all the same. A job registered with
``@job(requeue_on_loss=False)`` always ends as a failure.
"""

from __future__ import annotations

import hashlib
import logging

from resque_pool.conf import settings
from resque_pool.errors import interrupted_by_stop
from resque_pool.resque import job_metrics
from resque_pool.resque.connection import get_redis, key, registered_script
from resque_pool.resque.jobs import Job, registry
from resque_pool.resque.outcomes import GONE, job_failed, record_failure
from resque_pool.resque.reserve import InFlight, raw_key, read_in_flight
from resque_pool.resque.wakeup import wake_quietly

logger = logging.getLogger(__name__)

# How long an interruption count lives: long enough to span a job's retries.
INTERRUPTIONS_TTL = 24 * 3600


# KEYS: worker:<id>, worker-raw:<id>, queue:<q>, queues, interruptions:<digest>,
#       metrics:jobs, metrics:pool-jobs:<pool> (resque/job_metrics.py)
# ARGV: the record as read, max interruptions, count TTL, queue name, raw payload, the
#       job's "<class>|" field prefix in metrics:jobs, the pool hash's TTL ("" outside a
#       pool: not written)
# Returns -1 when the record changed (someone else handled it), else the interruption
# count: requeued when it is below the maximum, left alone otherwise.
_REQUEUE_LUA = r"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local count = redis.call('INCR', KEYS[5])
redis.call('EXPIRE', KEYS[5], ARGV[3])
local function counted(event)
  redis.call('HINCRBY', KEYS[6], ARGV[6] .. event, 1)
  if ARGV[7] ~= '' then
    redis.call('HINCRBY', KEYS[7], event, 1)
    redis.call('EXPIRE', KEYS[7], ARGV[7])
  end
end
counted('interrupted')
if count < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[4], ARGV[4])
  redis.call('LPUSH', KEYS[3], ARGV[5])
  redis.call('DEL', KEYS[1], KEYS[2])
  counted('requeued')
end
return count
"""


def interruptions_key(raw: str) -> str:
    """Our count of how often a job's process died under it, per payload bytes (two jobs
    with identical payloads share it)."""
    digest = hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()
    return key("interruptions", digest)


def requeue_allowed(in_flight: InFlight, requeue: bool | None = None) -> bool:
    """The policy for this job: ``requeue`` (None: ``RESQUE_REQUEUE_DIRTY_JOBS``), unless
    its job opted out with ``@job(requeue_on_loss=False)``."""
    if requeue is None:
        requeue = bool(settings.RESQUE_REQUEUE_DIRTY_JOBS)
    if not requeue or not in_flight.queue:
        return False
    name = in_flight.class_name
    definition = registry.get(name) if name is not None else None
    return definition is None or definition.requeue_on_loss


def job_lost(
    worker_id: str,
    in_flight: InFlight,
    reason: BaseException,
    requeue: bool | None = None,
    processed: bool = False,
) -> str:
    """Apply the loss policy to a job whose process died (or, ``reason`` a
    ``TermException``, was stopped with its worker); the in-flight record is gone
    afterwards. Returns ``"requeued"``, ``"failed"`` or ``"gone"`` (someone else, a prune
    or the manager, already dealt with it). ``requeue`` overrides the setting;
    ``processed``: a failure counts in ``stat:processed`` (the job's own worker writes it
    in place of ``done_working``). Redis refusing the write raises and changes nothing."""
    # The interruption is counted per class once: by the requeue script, else here.
    event: str | None = "interrupted"
    if requeue_allowed(in_flight, requeue):
        event = None
        pool = job_metrics.current_pool()
        count = registered_script(_REQUEUE_LUA)(
            keys=[
                key("worker", worker_id),
                raw_key(worker_id),
                key("queue", in_flight.queue),
                key("queues"),
                interruptions_key(in_flight.raw),
                key(job_metrics.JOBS),
                job_metrics.pool_jobs_key(pool or ""),
            ],
            args=[
                in_flight.record,
                int(settings.RESQUE_MAX_INTERRUPTIONS),
                INTERRUPTIONS_TTL,
                in_flight.queue,
                in_flight.raw,
                job_metrics.event_field(in_flight.class_name, ""),
                job_metrics.pool_jobs_ttl() if pool else "",
            ],
            client=get_redis(),
        )
        if count < 0:
            return "gone"
        if count < int(settings.RESQUE_MAX_INTERRUPTIONS):
            logger.warning(
                "%s: %s; requeued at the head of %s (interruption %d)",
                in_flight.job.describe(),
                reason,
                in_flight.queue,
                count,
            )
            wake_quietly([in_flight.queue])
            return "requeued"
        reason = type(reason)(f"{reason} (interrupted {count} times, not requeued again)")
    job = in_flight.job
    job_failed(job, reason, logging.WARNING)
    outcome = record_failure(
        worker_id,
        job,
        reason,
        counted=False,
        processed=processed,
        record=in_flight.record,
        event=event,
    )
    return "gone" if outcome == GONE else "failed"


def record_failed_job(worker_id: str, job: Job, error: BaseException) -> str:
    """The outcome of ``job``, which raised ``error`` in its worker's hands: a job stopped
    with its worker (the ``TermException`` a stop raised into it, with or without
    ``TERM_CHILD``) follows the loss policy, as a job killed by the stop would; anything
    else is the job's failure. Returns what ``job_lost`` or ``record_failure`` did."""
    if interrupted_by_stop(error):
        in_flight = read_in_flight(worker_id)
        if in_flight is not None and requeue_allowed(in_flight):
            return job_lost(worker_id, in_flight, error, processed=True)
    return record_failure(worker_id, job, error)
