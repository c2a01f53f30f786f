"""Finding and cleaning up workers that died without unregistering.

``prune_dead_workers`` follows Ruby Resque 3.0 (``Worker#prune_dead_workers`` in
``lib/resque/worker.rb``); ``cleanup_dead_worker`` is ours: the manager calls it for a
worker it saw die, instead of waiting for a prune.
"""

from __future__ import annotations

import logging
import re
import socket

import redis as redis_lib

from resque_pool.conf import settings
from resque_pool.errors import DirtyExit, PruneDeadWorkerDirtyExit
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.in_flight import job_lost
from resque_pool.resque.queue_resolution import QueueList
from resque_pool.resque.records import parse_worker_id
from resque_pool.resque.reserve import read_in_flight
from resque_pool.resque.worker_records import delete_worker_keys, unregister
from resque_pool.unix.files import pid_alive
from resque_pool.unix.process import command_line

logger = logging.getLogger(__name__)

PRUNE_LOCK = "pruning_dead_workers_in_progress"
# The command lines Ruby's worker_pids greps ``ps`` for (worker.rb:879-883).
_RESQUE_COMMAND = re.compile(r"resque:work|resque:\sStarting|resque-[0-9]")


def cleanup_dead_worker(worker_id: str, requeue: bool | None = None) -> bool:
    """Unregister a worker known to be dead (SIGKILL, OOM) without waiting for a prune.

    Its in-flight job follows the loss policy (``resque/in_flight.py``): a ``DirtyExit``
    failure, or with ``RESQUE_REQUEUE_DIRTY_JOBS`` a push back to the head of its queue.
    ``requeue`` overrides the setting. Returns True if anything was registered for the
    worker.
    """
    in_flight = read_in_flight(worker_id)
    if in_flight is not None:
        reason = DirtyExit(PruneDeadWorkerDirtyExit.message_for(worker_id, in_flight.class_name))
        job_lost(worker_id, in_flight, reason, requeue)
    return delete_worker_keys(worker_id) or in_flight is not None


def prune_dead_workers(worker_id: str, queues: QueueList | list[QueueList]) -> None:
    """Unregister workers that died without unregistering (``Worker#prune_dead_workers``).

    Runs under the ``pruning_dead_workers_in_progress`` lock. ``worker_id`` holds the
    lock (a worker's id, or a pool manager's ``host:pid``); ``queues`` is its queue list,
    or a manager's lists. A dead worker's job follows the loss policy. Heartbeats older than
    ``RESQUE_PRUNE_INTERVAL`` mark a worker dead wherever it runs; a worker on this host
    that reads the same queue set (or this worker reads ``*``) is dead when its pid is
    not a live resque process.
    """
    client = get_redis()
    lock_ttl = max(int(settings.RESQUE_HEARTBEAT_INTERVAL), 1)
    if not client.set(key(PRUNE_LOCK), worker_id, ex=lock_ttl, nx=True):
        return
    pruned = _prune_expired_heartbeats(client, worker_id)
    lists = queues if isinstance(queues, list) else [queues]
    for other in sorted(client.smembers(key("workers")) - pruned - {worker_id}):
        if any(_same_host_and_dead(other, queue_list) for queue_list in lists):
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
            in_flight = read_in_flight(other)
            job_class = in_flight.class_name if in_flight is not None else None
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
