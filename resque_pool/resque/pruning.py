"""Finding and cleaning up workers that died without unregistering.

``prune_dead_workers`` follows Ruby Resque 3.0 (``Worker#prune_dead_workers`` in
``lib/resque/worker.rb``); ``cleanup_dead_worker`` is ours: the manager calls it for a
worker it saw die, instead of waiting for a prune.
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

import redis as redis_lib

from resque_pool.conf import settings
from resque_pool.errors import DirtyExit, PruneDeadWorkerDirtyExit
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.jobs import Job, class_name_of
from resque_pool.resque.outcomes import fail_recorded_job
from resque_pool.resque.queue_resolution import QueueList
from resque_pool.resque.records import parse_worker_id
from resque_pool.resque.workers import delete_worker_keys, processing, unregister
from resque_pool.unix.process import command_line, pid_alive

logger = logging.getLogger(__name__)

PRUNE_LOCK = "pruning_dead_workers_in_progress"
# The command lines Ruby's worker_pids greps ``ps`` for (worker.rb:879-883).
_RESQUE_COMMAND = re.compile(r"resque:work|resque:\sStarting|resque-[0-9]")


def cleanup_dead_worker(worker_id: str, requeue: bool = False) -> bool:
    """Unregister a worker known to be dead (SIGKILL, OOM) without waiting for a prune.

    Its in-flight job becomes a DirtyExit failure, or with ``requeue`` is pushed again to
    the end of its queue (Resque only ever RPUSHes). Returns True if anything was
    registered for the worker.
    """
    in_flight = processing(worker_id)
    if in_flight and requeue and in_flight.get("queue"):
        _push_back(in_flight["queue"], in_flight.get("payload"))
    elif in_flight:
        job_class = class_name_of(in_flight.get("payload"))
        reason = DirtyExit(PruneDeadWorkerDirtyExit.message_for(worker_id, job_class))
        fail_recorded_job(worker_id, in_flight, reason)
    return delete_worker_keys(worker_id) or bool(in_flight)


def _push_back(queue: str, payload: Any) -> None:
    raw = Job.from_payload(queue, payload).raw
    pipe = get_redis().pipeline(transaction=False)
    pipe.sadd(key("queues"), queue)
    pipe.rpush(key("queue", queue), raw)
    pipe.execute()
    logger.info("Requeued the job of a dead worker on %s: %s", queue, raw[:200])


def prune_dead_workers(worker_id: str, queues: QueueList) -> None:
    """Unregister workers that died without unregistering (``Worker#prune_dead_workers``).

    Runs under the ``pruning_dead_workers_in_progress`` lock. Heartbeats older than
    ``RESQUE_PRUNE_INTERVAL`` mark a worker dead wherever it runs; a worker on this host
    that reads the same queue set (or this worker reads ``*``) is dead when its pid is
    not a live resque process.
    """
    client = get_redis()
    lock_ttl = max(int(settings.RESQUE_HEARTBEAT_INTERVAL), 1)
    if not client.set(key(PRUNE_LOCK), worker_id, ex=lock_ttl, nx=True):
        return
    pruned = _prune_expired_heartbeats(client, worker_id)
    for other in sorted(client.smembers(key("workers")) - pruned - {worker_id}):
        if _same_host_and_dead(other, queues):
            logger.info("Pruning dead worker: %s", other)
            unregister(other)


def _prune_expired_heartbeats(client: redis_lib.Redis, worker_id: str) -> set[str]:
    now, _micro = client.time()
    pruned: set[str] = set()
    for other, value in client.hgetall(key("workers:heartbeat")).items():
        beat_time = wire.parse_time(value)
        if other == worker_id:
            continue
        if beat_time is None:
            logger.warning("Unreadable heartbeat %r for worker %s; left alone", value, other)
            continue
        if int(now - beat_time.timestamp()) > int(settings.RESQUE_PRUNE_INTERVAL):
            logger.info("Pruning dead worker: %s", other)
            job_class = class_name_of((processing(other) or {}).get("payload"))
            unregister(
                other,
                PruneDeadWorkerDirtyExit(PruneDeadWorkerDirtyExit.message_for(other, job_class)),
            )
            pruned.add(other)
    return pruned


def _same_host_and_dead(other: str, queues: QueueList) -> bool:
    parsed = parse_worker_id(other)
    if not parsed.complete:
        return False
    host, pid = parsed.host, parsed.pid
    if "*" not in queues.patterns and set(parsed.queues) != set(queues.patterns):
        return False  # may be a worker of another application or language
    if host != socket.gethostname():
        return False
    return not (pid.isdigit() and resque_process_alive(int(pid)))


def resque_process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live resque worker process.

    Ruby greps ``ps`` for resque command lines; we check the pid directly and, where
    ``/proc`` exists, that its command line is a resque one, so a recycled pid or a
    zombie does not keep a dead worker registered.
    """
    if not pid_alive(pid):
        return False
    text = command_line(pid)
    if text is None:
        return True  # cannot tell: a live pid is given the benefit of the doubt
    return bool(_RESQUE_COMMAND.search(text)) and "resque-web" not in text
