"""The worker's heartbeat: ``workers:heartbeat <id>`` from Redis ``TIME``, as Ruby Resque's
heartbeat thread writes it (``Worker#start_heartbeat`` in ``lib/resque/worker.rb``)."""

from __future__ import annotations

import logging
import threading

import redis as redis_lib

from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key

logger = logging.getLogger(__name__)


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
