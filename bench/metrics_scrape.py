"""The metrics view's scrape time for a large fleet, against reading only the queues' lengths.

    .venv/bin/python -m bench.metrics_scrape [--queues 10000] [--workers 1000] [--rounds 7]

Fills a private redis-server with ``--queues`` queues (one to three jobs each, the job at
each head seen before, so the age is computed too), ``--workers`` registered workers over
20 hosts and 50 queue lists (a third of them busy), four published pools and a duration
histogram for ten job classes. Then times, in this process, median of ``--rounds``:

- ``scrape``: the whole scrape as the view makes it (both Redis round trips, the head
  script, every metric family and prometheus-client's text);
- ``llen loop``: one ``LLEN`` per queue, a round trip each: what an exporter that reads
  queue by queue pays for the lengths alone;
- ``llen pipeline``: every queue's ``LLEN`` in one pipeline (the dashboard's queue page):
  a floor for reading the lengths alone.

No peer exporter fits: rq's and django-rq's metrics count the queues an rq project
configures, not a Resque fleet's, so the ratios are to those two reads.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import redis

from bench.common import NAMESPACE, env_for, median, start_redis


def fill(client: redis.Redis, queues: int, workers: int) -> None:
    pipe = client.pipeline(transaction=False)
    for n in range(queues):
        name = f"q{n:05d}"
        pipe.sadd(f"{NAMESPACE}:queues", name)
        for job in range(1 + n % 3):
            payload = json.dumps({"class": f"Job{n % 10}", "args": [n, job]})
            pipe.rpush(f"{NAMESPACE}:queue:{name}", payload)
        if n % 2000 == 1999:
            pipe.execute()
    for n in range(workers):
        worker_id = f"host{n % 20}:{10000 + n}:q{n % 50:05d},q{(n + 1) % 50:05d}"
        pipe.sadd(f"{NAMESPACE}:workers", worker_id)
        pipe.set(f"{NAMESPACE}:worker:{worker_id}:started", "2026-12-07 10:00:00 +0000")
        if n % 3 == 0:
            record = {"queue": "q00001", "run_at": "2026-12-07T10:00:00Z", "payload": {}}
            pipe.set(f"{NAMESPACE}:worker:{worker_id}", json.dumps(record))
    for n in range(4):
        state = {
            "id": f"host{n}:{n + 100}",
            "host": f"host{n}",
            "pid": n + 100,
            "appname": "bench",
            "heartbeat": "2026-12-07T10:00:00+00:00",
            "counts": {"q00001,q00002": 250},
            "workers": {"q00001,q00002": list(range(250))},
            "figures": {"spawned": 250, "recycled": 3, "died": 1, "rss_bytes": 10**9},
        }
        pipe.sadd(f"{NAMESPACE}:pools", state["id"])
        pipe.set(f"{NAMESPACE}:pool:{state['id']}", json.dumps(state))
    for n in range(10):
        for bound in ("0.005", "0.1", "1.0", "+Inf"):
            pipe.hset(f"{NAMESPACE}:metrics:durations", f"Job{n}|{bound}", 10)
        pipe.hset(f"{NAMESPACE}:metrics:durations", f"Job{n}|sum_us", 10**6)
    pipe.execute()


def timed(action, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    server = start_redis()
    try:
        os.environ.update(env_for(server.url))
        import django  # noqa: PLC0415 (after the environment names the bench's Redis)

        django.setup()
        from prometheus_client import generate_latest  # noqa: PLC0415

        from resque_pool.metrics.views import registry  # noqa: PLC0415
        from resque_pool.resque.connection import get_redis, key  # noqa: PLC0415

        client = redis.Redis.from_url(server.url)
        fill(client, options.queues, options.workers)
        body = generate_latest(registry())  # loads the script, records the heads
        ours = get_redis()
        names = sorted(ours.smembers(key("queues")))

        def llen_loop() -> None:
            for name in names:
                ours.llen(key("queue", name))

        def llen_pipeline() -> None:
            pipe = ours.pipeline(transaction=False)
            for name in names:
                pipe.llen(key("queue", name))
            pipe.execute()

        scrape = timed(lambda: generate_latest(registry()), options.rounds)
        loop = timed(llen_loop, options.rounds)
        pipelined = timed(llen_pipeline, options.rounds)
        print(
            f"{options.queues:,} queues, {options.workers:,} workers: scrape {scrape:.3f}s "
            f"({len(body) / 1e6:.1f} MB of text); llen loop {loop:.3f}s, llen pipeline "
            f"{pipelined:.3f}s; scrape / llen loop {scrape / loop:.2f}, scrape / llen "
            f"pipeline {scrape / pipelined:.2f} (medians of {options.rounds})"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
