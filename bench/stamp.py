"""What the latency jobs of every system do: push "started - enqueued" seconds to a list.

No Django here: Celery's workers import it too."""

import os
import time

import redis

LATENCY_KEY = "bench-latency"
_client: list[tuple[redis.Redis, int]] = []


def stamp_client() -> redis.Redis:
    """One client per process, opened on first use (a forked child opens its own)."""
    if not _client or _client[0][1] != os.getpid():
        _client[:] = [(redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]), os.getpid())]
    return _client[0][0]


def record_latency(enqueued_at: float) -> None:
    started = time.time()
    stamp_client().rpush(LATENCY_KEY, started - float(enqueued_at))
