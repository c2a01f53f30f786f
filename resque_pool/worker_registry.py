"""What a worker writes to Redis about itself, and the clean-up of workers that died.

Every key write here mirrors Ruby Resque 3.0 (``worker.rb``/``data_store.rb``) command for
command; see ``shared/reference/resque-wire-format.md`` sections 1 and 3.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Iterable
from typing import Any

import redis as redis_lib

from . import failure, wire
from .conf import settings
from .connection import get_redis, key
from .errors import DirtyExit, PruneDeadWorkerDirtyExit
from .jobs import Job, class_name_of, registry
from .proc import command_line, pid_alive
from .queue_resolution import QueueList

logger = logging.getLogger(__name__)

PRUNE_LOCK = "pruning_dead_workers_in_progress"
# The command lines Ruby's worker_pids greps ``ps`` for (worker.rb:879-883).
_RESQUE_COMMAND = re.compile(r"resque:work|resque:\sStarting|resque-[0-9]")


def make_worker_id(pid: int, queues: str | Iterable[str]) -> str:
    """``host:pid:q1,q2`` with the raw non-negated patterns, as ``Worker#to_s``."""
    return f"{socket.gethostname()}:{pid}:{QueueList(queues)}"


def parse_worker_id(worker_id: str) -> tuple[str, str, list[str]] | None:
    """``(host, pid, queues)``; queue names may contain ``:`` (``split(':', 3)`` in Ruby)."""
    parts = worker_id.split(":", 2)
    if len(parts) != 3:
        return None
    host, pid, queues = parts
    return host, pid, queues.split(",")


# -- registration ---------------------------------------------------------------------


def register(worker_id: str) -> None:
    pipe = get_redis().pipeline(transaction=False)
    pipe.sadd(key("workers"), worker_id)
    pipe.set(key("worker", worker_id, "started"), wire.started_at())
    pipe.execute()


def unregister(worker_id: str, exception: BaseException | None = None) -> bool:
    """Fail the job still recorded as in flight, then delete every key of the worker.

    Returns True if the worker had anything registered."""
    in_flight = processing(worker_id)
    if in_flight:
        fail_recorded_job(worker_id, in_flight, exception or DirtyExit("Job still being processed"))
    return _delete_worker_keys(worker_id) or bool(in_flight)


def _delete_worker_keys(worker_id: str) -> bool:
    pipe = get_redis().pipeline(transaction=False)
    pipe.srem(key("workers"), worker_id)
    pipe.delete(key("worker", worker_id))
    pipe.delete(key("worker", worker_id, "started"))
    pipe.hdel(key("workers:heartbeat"), worker_id)
    pipe.delete(key("stat", "processed", worker_id))
    pipe.delete(key("stat", "failed", worker_id))
    return any(pipe.execute()[:4])


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
    return _delete_worker_keys(worker_id) or bool(in_flight)


def _push_back(queue: str, payload: Any) -> None:
    raw = Job.from_payload(queue, payload).raw
    pipe = get_redis().pipeline(transaction=False)
    pipe.sadd(key("queues"), queue)
    pipe.rpush(key("queue", queue), raw)
    pipe.execute()
    logger.info("Requeued the job of a dead worker on %s: %s", queue, raw[:200])


# -- the job being worked on ----------------------------------------------------------


def working_on(worker_id: str, job: Job) -> None:
    data = {"queue": job.queue, "run_at": wire.run_at(), "payload": job.payload}
    get_redis().set(key("worker", worker_id), wire.dumps(data))


def processing(worker_id: str) -> dict[str, Any] | None:
    raw = get_redis().get(key("worker", worker_id))
    if not raw:
        return None
    try:
        data = wire.loads(raw)
    except ValueError:
        return {"queue": "", "payload": raw}
    return data if isinstance(data, dict) else {"queue": "", "payload": data}


def done_working(worker_id: str) -> None:
    pipe = get_redis().pipeline(transaction=False)
    pipe.delete(key("worker", worker_id))
    pipe.incrby(key("stat", "processed"), 1)
    pipe.incrby(key("stat", "processed", worker_id), 1)
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


def report_dirty_exit(worker_id: str, job: Job, exception: DirtyExit) -> None:
    """A job whose process died: a failure entry, but ``stat:failed`` is left alone."""
    logger.error("%s: %s", job.describe(), exception)
    _fail(worker_id, job, exception)


def fail_recorded_job(worker_id: str, data: dict[str, Any], exception: BaseException) -> None:
    job = Job.from_payload(str(data.get("queue") or ""), data.get("payload"))
    logger.warning("%s: %s", job.describe(), exception)
    _fail(worker_id, job, exception)


def _fail(worker_id: str, job: Job, exception: BaseException) -> None:
    try:
        job.run_failure_hooks(exception)
    except Exception:
        logger.exception("on_failure hook of %s raised", job.class_name)
    failure.create(exception, worker_id, job.queue, job.payload)


def display_class(job: Job) -> str:
    """The class a procline shows; ``No Name`` when this process cannot run it (Ruby)."""
    name = job.class_name
    return name if name is not None and name in registry else "No Name"


# -- heartbeat --------------------------------------------------------------------------


class Heartbeat:
    """A daemon thread that HSETs ``workers:heartbeat <id>`` from Redis ``TIME``.

    It holds its own client so it never touches the shared client registry, whose lock a
    forked job child must be able to take."""

    def __init__(self, worker_id: str, interval: float) -> None:
        self.worker_id = worker_id
        self.interval = max(float(interval), 0.1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        client = get_redis()
        client.hdel(key("workers:heartbeat"), self.worker_id)
        self._thread = threading.Thread(
            target=self._run, args=(client,), name="resque-heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, client: redis_lib.Redis) -> None:
        while not self._stop.is_set():
            try:
                beat(client, self.worker_id)
            except redis_lib.RedisError as error:
                logger.warning("Heartbeat failed: %s", error)
            self._stop.wait(self.interval)


def beat(client: redis_lib.Redis, worker_id: str) -> None:
    seconds, _micro = client.time()
    client.hset(key("workers:heartbeat"), worker_id, wire.heartbeat(seconds))


# -- pruning ----------------------------------------------------------------------------


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
    if parsed is None:
        return False
    host, pid, other_queues = parsed
    if "*" not in queues.patterns and set(other_queues) != set(queues.patterns):
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


def record_tolerantly(what: str, write: Any, *args: Any) -> None:
    """Run a Redis write about a job in hand; an outage is logged with the job, not raised."""
    try:
        write(*args)
    except (redis_lib.ConnectionError, redis_lib.TimeoutError) as error:
        job = next((arg for arg in args if isinstance(arg, Job)), None)
        # A longer cut than usual: this log line may be all that is left of the job.
        logger.error(
            "could not record %s in Redis (%s)%s",
            what,
            error,
            f"; job: {job.describe(500)}" if job else "",
        )
