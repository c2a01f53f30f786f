"""What one in-process job costs a worker: round trips, commands, CPU, and the drain's rate.

    .venv/bin/python bench/worker_cost.py [--jobs 20000] [--rounds 3] [--root DIR]

One worker in this process (``FORK_PER_JOB`` off) drains ``--jobs`` no-op jobs from a
private redis-server. Redis's own counters give the round trips (``total_reads_processed``:
one read event per write the worker sends) and the commands per job; the process's CPU
time and the wall clock give the rest. ``--root`` runs another checkout's code (an older
commit in a ``git worktree``), so that a change's cost is measured before and after with
the same script on the same machine, minutes apart. Round trips and commands do not
depend on the machine's load; CPU per job depends on it much less than the rate does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    options = parser.parse_args()
    root = str(Path(options.root).resolve())
    sys.path.insert(0, root)  # this checkout's resque_pool, bench and tests

    import redis  # noqa: PLC0415

    from bench.common import NAMESPACE, env_for, start_redis  # noqa: PLC0415

    server = start_redis()
    try:
        os.environ.update(env_for(server.url))
        import django  # noqa: PLC0415

        django.setup()
        from resque_pool.worker.loop import Worker  # noqa: PLC0415

        client = redis.Redis.from_url(server.url, decode_responses=True)
        rows = []
        for _ in range(options.rounds):
            client.flushdb()
            pipe = client.pipeline(transaction=False)
            pipe.sadd(f"{NAMESPACE}:queues", "bench")
            for n in range(options.jobs):
                pipe.rpush(f"{NAMESPACE}:queue:bench", f'{{"class":"BenchNoop","args":[{n}]}}')
            pipe.execute()
            before = client.info("stats")
            cpu, wall = time.process_time(), time.perf_counter()
            Worker("bench", interval=0, fork_per_job=False).work()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            after = client.info("stats")
            assert client.get(f"{NAMESPACE}:stat:processed") == str(options.jobs)
            reads = after["total_reads_processed"] - before["total_reads_processed"]
            commands = after["total_commands_processed"] - before["total_commands_processed"]
            rows.append((options.jobs / wall, cpu / options.jobs, reads, commands))
        rate = statistics.median(row[0] for row in rows)
        cpu_per_job = statistics.median(row[1] for row in rows)
        reads = statistics.median(row[2] for row in rows) / options.jobs
        commands = statistics.median(row[3] for row in rows) / options.jobs
        print(
            f"{root}: {rate:,.0f} jobs/s, {cpu_per_job * 1e6:.0f} us CPU per job, "
            f"{reads:.2f} round trips and {commands:.2f} commands per job "
            f"(medians of {options.rounds} drains of {options.jobs:,} jobs)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
