"""What a worker writes to Redis about itself: its id, registration and unregistering.

Every key write mirrors Ruby Resque 3.0 (``lib/resque/worker.rb`` and
``lib/resque/data_store.rb``) command for command; ``docs/interop.md`` lists the keys.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import Any

from resque_pool.errors import DirtyExit
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.in_flight import job_lost
from resque_pool.resque.jobs import Job
from resque_pool.resque.outcomes import job_failed, record_failure
from resque_pool.resque.queue_resolution import QueueList
from resque_pool.resque.reserve import placeholder_payload, raw_key, read_in_flight

logger = logging.getLogger(__name__)


def make_worker_id(pid: int, queues: str | Iterable[str]) -> str:
    """``host:pid:q1,q2`` with the raw non-negated patterns, as ``Worker#to_s``."""
    return f"{socket.gethostname()}:{pid}:{QueueList(queues)}"


def register(worker_id: str, pipe: Any = None) -> None:
    """Resque's registration: the id in ``workers`` and its ``started`` time; into
    ``pipe`` when given (the caller executes it), else sent at once."""
    own = pipe is None
    if own:
        pipe = get_redis().pipeline(transaction=False)
    pipe.sadd(key("workers"), worker_id)
    pipe.set(key("worker", worker_id, "started"), wire.started_at())
    if own:
        pipe.execute()


def delete_worker_keys(worker_id: str) -> bool:
    """Remove every key of the worker; True if it was registered in any of them."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.srem(key("workers"), worker_id)
    pipe.delete(key("worker", worker_id))
    pipe.delete(key("worker", worker_id, "started"))
    pipe.hdel(key("workers:heartbeat"), worker_id)
    pipe.delete(key("stat", "processed", worker_id))
    pipe.delete(key("stat", "failed", worker_id))
    pipe.delete(raw_key(worker_id))
    return any(pipe.execute()[:4])


def unregister(worker_id: str, exception: BaseException | None = None) -> bool:
    """Deal with a job still recorded as in flight, then delete every key of the worker.

    The job was lost with its process: the loss policy applies (a ``DirtyExit`` failure,
    ``Job still being processed`` unless ``exception`` is another ``DirtyExit``, or a
    requeue). Any other ``exception`` (what stopped the worker) is recorded as the job's
    failure, as Resque does. Returns True if the worker had anything registered."""
    in_flight = read_in_flight(worker_id)
    if in_flight is not None:
        if exception is None or isinstance(exception, DirtyExit):
            job_lost(worker_id, in_flight, exception or DirtyExit("Job still being processed"))
        else:
            job_failed(in_flight.job, exception, logging.WARNING)
            record_failure(
                worker_id,
                in_flight.job,
                exception,
                counted=False,
                processed=False,
                record=in_flight.record,
            )
    return delete_worker_keys(worker_id) or in_flight is not None


def working_on(worker_id: str, job: Job) -> None:
    """Record ``job`` as ``worker_id``'s in-flight job, as Resque's ``Worker#working_on``
    writes it, for a job taken some other way than ``reserve.reserve`` (which pops and
    records in one step). The payload's own bytes are kept when they can be."""
    head = f'{{"queue":{wire.dumps(job.queue)},"run_at":"{wire.run_at()}","payload":'
    if wire.splicable(job.raw, require_object=True):
        get_redis().set(key("worker", worker_id), f"{head}{job.raw}}}")
        return
    pipe = get_redis().pipeline(transaction=False)
    pipe.set(raw_key(worker_id), job.raw)
    pipe.set(key("worker", worker_id), f"{head}{placeholder_payload()}}}")
    pipe.execute()
