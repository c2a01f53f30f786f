"""The worker's heartbeat: ``workers:heartbeat <id>`` from Redis ``TIME``, as Ruby Resque's
heartbeat thread writes it (``Worker#start_heartbeat`` in ``lib/resque/worker.rb``)."""

from __future__ import annotations

import logging
import os
import threading
import time

import redis as redis_lib

from resque_pool.logs import LogOnce
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key

logger = logging.getLogger(__name__)


class Heartbeat:
    """HSETs ``workers:heartbeat <id>`` from Redis ``TIME`` every ``interval`` seconds.

    Once ``registered`` is set, each beat also makes sure the worker is in ``workers``:
    a worker that finds itself missing (Redis restarted empty, a failover, a prune that
    took it for dead) registers again, even in the middle of a job.

    ``in_thread``: beat from a daemon thread, as Ruby Resque does, for a worker whose main
    loop may be away for a whole job (jobs run in the worker). A worker that forks per job
    calls ``tick()`` from its main loop instead, which never waits more than a second: no
    thread, so nothing else runs in the worker when it forks (CPython 3.12 warns about
    forking a process with threads), and a few hundred KiB less private memory per worker.

    The thread holds its own client so it never touches the shared client registry, whose
    lock a forked job child must be able to take.

    ``manager_pid``: a pool worker beats once at start, then leaves its heartbeats to its
    manager, which writes those of all its workers in one command (``pool/idle_watch.py``)
    for as long as it runs them; a worker whose manager is gone beats again itself while
    it finishes its job."""

    def __init__(
        self,
        worker_id: str,
        interval: float,
        in_thread: bool = True,
        manager_pid: int | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.manager_pid = manager_pid
        self._beaten = False
        self.interval = max(float(interval), 0.1)
        self.in_thread = in_thread
        self.registered = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis_lib.Redis | None = None
        self._next_beat = 0.0
        self._failing = LogOnce(logger, logging.WARNING)

    def start(self) -> None:
        client = get_redis()
        client.hdel(key("workers:heartbeat"), self.worker_id)
        if not self.in_thread:
            self._client = client
            self.tick()
            return
        self._thread = threading.Thread(
            target=self._run, args=(client,), name="resque-heartbeat", daemon=True
        )
        self._thread.start()

    def tick(self) -> None:
        """From the main loop (``in_thread=False``): beat if the interval has passed."""
        if self._client is None or self._stop.is_set():
            return
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + self.interval
            self._beat_once(self._client)

    def stop(self) -> None:
        self.registered.clear()  # never registers again once the worker is leaving
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, client: redis_lib.Redis) -> None:
        while not self._stop.is_set():
            self._beat_once(client)
            self._stop.wait(self.interval)

    def _managed(self) -> bool:
        """The manager beats for this worker (it did once itself, at start)."""
        return self._beaten and self.manager_pid is not None and os.getppid() == self.manager_pid

    def _beat_once(self, client: redis_lib.Redis) -> None:
        if self._managed():
            return
        self._beaten = True
        try:
            if beat(client, self.worker_id, self.registered.is_set()):
                logger.warning(
                    "Worker %s was missing from workers; registered again", self.worker_id
                )
        except redis_lib.RedisError as error:
            self._failing.error("down", "Heartbeat failed: %s", error)  # once per outage
        else:
            self._failing.clear()


def beat(client: redis_lib.Redis, worker_id: str, register: bool = False) -> bool:
    """One beat; with ``register``, add the worker to ``workers`` (and write its
    ``started``) if it is missing. True if it had to register again."""
    seconds, _micro = client.time()
    pipe = client.pipeline(transaction=False)
    pipe.hset(key("workers:heartbeat"), worker_id, wire.heartbeat(seconds))
    if register:
        pipe.sadd(key("workers"), worker_id)
    added = pipe.execute()[1:]
    if added and added[0]:
        client.set(key("worker", worker_id, "started"), wire.started_at())
        return True
    return False
