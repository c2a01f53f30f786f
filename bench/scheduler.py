"""Due delayed jobs moved per second by one scheduler.

    .venv/bin/python -m bench.scheduler [--jobs 20000] [--times 200] [--rounds 3]

Fills a private redis-server with ``--jobs`` due items spread over ``--times``
timestamps, exactly as resque-scheduler's ``delayed_push`` writes them, then times one
``manage.py resque_scheduler`` process from its start until every item is on its queue,
minus its start-up (measured with nothing due). Best of ``--rounds``. Each item is one
atomic Lua script, 100 scripts per pipelined round trip.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import redis

from bench.common import PYTHON, ROOT, env_for, start_redis
from resque_pool.resque import wire

PAST = 1_000_000_000


def fill(client: redis.Redis, jobs: int, times: int) -> None:
    pipe = client.pipeline(transaction=False)
    for n in range(jobs):
        stamp = PAST + n % times
        item = wire.dumps({"class": "Noop", "args": [n], "queue": "bench"})
        pipe.rpush(f"bench:delayed:{stamp}", item)
        pipe.sadd(f"bench:timestamps:{item}", f"delayed:{stamp}")
        pipe.zadd("bench:delayed_queue_schedule", {str(stamp): stamp})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def run_until(client: redis.Redis, url: str, jobs: int) -> float:
    """Seconds from starting a scheduler until ``jobs`` entries are on the queue."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "manage.py"), "resque_scheduler"],
        env=env_for(url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while client.llen("bench:queue:bench") < jobs:
            time.sleep(0.002)
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--times", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    server = start_redis()
    client = redis.Redis.from_url(server.url)
    try:
        # Start-up: until a single due item is moved (Django set-up, first loop).
        startups = []
        for _ in range(options.rounds):
            client.flushdb()
            fill(client, 1, 1)
            startups.append(run_until(client, server.url, 1))
        startup = min(startups)
        best = None
        for _ in range(options.rounds):
            client.flushdb()
            fill(client, options.jobs, options.times)
            elapsed = run_until(client, server.url, options.jobs) - startup
            assert client.zcard("bench:delayed_queue_schedule") == 0
            best = elapsed if best is None else min(best, elapsed)
        print(
            f"{options.jobs} due jobs over {options.times} times: {best:.2f}s after a "
            f"{startup:.2f}s start-up -> {options.jobs / best:,.0f} jobs/s (best of "
            f"{options.rounds})"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
