"""Processes the harness starts to measure floors and clients, one per command:

    python -m bench.clients enqueue ours|rq|celery JOBS    # prints jobs/s of one client
    python -m bench.clients fork-floor FORKS               # fork, _exit, waitpid
    python -m bench.clients protocol TEMPLATE.json QUEUE_KEY

``fork-floor`` and ``protocol`` load what they need, INCR ``bench-ready``, block on
``bench-go`` (so N of them start together), run, and print the count of what they did and
the seconds it took (so the interpreter's exit is not counted).
"""

from __future__ import annotations

import json
import os
import sys
import time

import redis

READY_KEY, GO_KEY = "bench-ready", "bench-go"


def _wait_for_go(client: redis.Redis) -> None:
    client.incr(READY_KEY)
    if client.blpop([GO_KEY], timeout=120) is None:
        sys.exit("no go signal within 120 s")


def enqueue(system: str, jobs: int) -> float:
    if system == "ours":
        import django

        django.setup()
        from resque_pool import enqueue as ours

        def push(number):
            ours("BenchNoop", number, queue="bench")
    elif system == "rq":
        from rq import Queue

        from bench.rq_jobs import noop

        queue = Queue("bench", connection=redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]))

        def push(number):
            queue.enqueue(noop, number)
    else:
        from bench.celery_app import noop

        def push(number):
            noop.delay(number)

    push(-1)  # connections opened, code paths warm
    started = time.perf_counter()
    for number in range(jobs):
        push(number)
    return jobs / (time.perf_counter() - started)


def fork_floor(forks: int) -> tuple[int, float]:
    import django

    django.setup()  # the floor is a fork of a Django-loaded process, as our workers are
    _wait_for_go(redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    started = time.perf_counter()
    for _ in range(forks):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return forks, time.perf_counter() - started


def protocol(template_path: str, queue_key: str) -> tuple[int, float]:
    from bench.protocol import replay

    with open(template_path) as source:
        template = [
            [[arg.encode("utf-8", "surrogateescape") for arg in args] for args in trip]
            for trip in json.load(source)
        ]
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _wait_for_go(client)
    started = time.perf_counter()
    return replay(client, template, queue_key), time.perf_counter() - started


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "enqueue":
        print(f"{enqueue(args[0], int(args[1])):.1f}")
    elif command == "fork-floor":
        print(*fork_floor(int(args[0])))
    elif command == "protocol":
        print(*protocol(args[0], args[1]))
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
