"""Pick-up latency of an idle pool and its idle Redis load: ``python -m bench.pickup``.

A small script of its own beside ``bench/run.py`` (whose figure 8 also measures pick-up):
this one pushes our stamps the way ``enqueue()`` does, queue entry **and** wake-up token
(``resque/wakeup.py``), so it measures the wake-up path; ``bench/run.py`` pushes a bare
``RPUSH``, as a foreign client would, which our workers find by the poll at ``INTERVAL``.

For ours and django-rq's ``rqworker-pool`` (N workers each, default settings, fork per
job) it reports p50/p95 of "job started - job enqueued" over idle stamps pushed at random
moments, and for ours the Redis commands the idle pool makes per worker per second
(``INFO commandstats``, so commands run inside scripts count; the manager's own commands
are included, so the figure is an upper bound). It starts its own redis-server.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import redis

from bench.common import NAMESPACE, QUEUE, cleanup, percentile, start_redis, wait_for
from bench.stamp import LATENCY_KEY
from bench.systems import RQ, Ours, _payload

WAKE_KEY = f"{NAMESPACE}:wakeup:{QUEUE}"


def push_ours(client: redis.Redis) -> None:
    """What enqueue() sends: the queue entry and one wake-up token, in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.sadd(f"{NAMESPACE}:queues", QUEUE)
    pipe.rpush(f"{NAMESPACE}:queue:{QUEUE}", _payload("BenchStamp", [time.time()]))
    pipe.rpush(WAKE_KEY, "1")
    pipe.ltrim(WAKE_KEY, -64, -1)
    pipe.expire(WAKE_KEY, 300)
    pipe.execute()


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(entry["calls"] for name, entry in stats.items() if name != "cmdstat_info")


def latencies(client: redis.Redis, push, stamps: int) -> list[float]:
    client.delete(LATENCY_KEY)
    for count in range(1, stamps + 1):
        push(client)
        wait_for(lambda c=count: client.llen(LATENCY_KEY) >= c, 60, "a stamp", 0.001)
        time.sleep(random.uniform(0.1, 0.6))  # a random phase against any poll
    return [float(value) for value in client.lrange(LATENCY_KEY, 0, -1)]


def run(system, url: str, n: int, stamps: int, idle_window: float) -> dict:
    client = redis.Redis.from_url(url)
    client.flushdb()
    running = system.launch(url, n)
    try:
        wait_for(lambda: system.registered(client) >= n, 60, f"{system.name} workers")
        time.sleep(2.0)
        result = {}
        if isinstance(system, Ours):
            before = commands(client)
            time.sleep(idle_window)
            result["idle commands per worker per s"] = (commands(client) - before) / n / idle_window
        push = push_ours if isinstance(system, Ours) else system.push_stamp
        values = latencies(client, push, stamps)
        result["p50 ms"] = percentile(values, 0.5) * 1000
        result["p95 ms"] = percentile(values, 0.95) * 1000
        result["stamps"] = len(values)
        return result
    finally:
        running.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="workers per system (4)")
    parser.add_argument("--stamps", type=int, default=40, help="latency jobs per system (40)")
    parser.add_argument("--idle", type=float, default=10.0, help="idle window, seconds (10)")
    options = parser.parse_args(argv)
    server = start_redis()
    try:
        for system in (Ours(), RQ()):
            reason = system.skip_reason()
            if reason:
                print(f"{system.name}: skipped ({reason})")
                continue
            figures = run(system, server.url, options.n, options.stamps, options.idle)
            shown = ", ".join(f"{name} {value:.1f}" for name, value in figures.items())
            print(f"{system.name}, n={options.n}: {shown}", flush=True)
    finally:
        cleanup()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
