"""Jobs per second of one worker, django-resque-pool against rq, in the same run.

    .venv/bin/python -m bench.throughput [--jobs 1000] [--rounds 3]

Both workers drain the same number of no-op jobs from the same private redis-server, once
forking a child per job (Resque's and rq's default) and once running jobs in the worker
process (FORK_PER_JOB=false / rq's SimpleWorker). Start-up (Django or rq import) is measured
with an empty queue and subtracted. The best of ``--rounds`` is reported, with the ratio
ours / rq (above 1 means we are faster).
"""

from __future__ import annotations

import argparse

import redis

from bench.common import PYTHON, env_for, start_redis, timed
from resque_pool.resque import wire


def fill_ours(client: redis.Redis, jobs: int) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.sadd("bench:queues", "bench")
    for n in range(jobs):
        pipe.rpush("bench:queue:bench", wire.job_payload("Noop", [n]))
    pipe.execute()


def fill_rq(url: str, jobs: int) -> None:
    from rq import Queue

    from bench.rq_jobs import noop

    queue = Queue("bench", connection=redis.Redis.from_url(url))
    with queue.connection.pipeline() as pipe:
        for n in range(jobs):
            queue.enqueue(noop, n, pipeline=pipe)
        pipe.execute()


def run_ours(url: str, client: redis.Redis, jobs: int, fork: bool) -> float:
    env = env_for(url, FORK_PER_JOB="true" if fork else "false")
    cmd = [PYTHON, "manage.py", "resque_work", "--queues", "bench", "--interval", "0"]
    fill_ours(client, 0)
    startup = timed(cmd, env)
    fill_ours(client, jobs)
    total = timed(cmd, env)
    assert client.llen("bench:queue:bench") == 0, "our worker left jobs behind"
    return max(total - startup, 1e-9)


def run_rq(url: str, client: redis.Redis, jobs: int, fork: bool) -> float:
    env = env_for(url)
    cmd = [PYTHON, "-m", "rq.cli", "worker", "--burst", "--url", url, "--quiet"]
    if not fork:
        cmd += ["--worker-class", "rq.worker.SimpleWorker"]
    cmd.append("bench")
    startup = timed(cmd, env)
    fill_rq(url, jobs)
    total = timed(cmd, env)
    assert client.llen("rq:queue:bench") == 0, "rq left jobs behind"
    return max(total - startup, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    server = start_redis()
    client = redis.Redis.from_url(server.url)
    try:
        print(f"redis: {server.kind}; {options.jobs} no-op jobs; best of {options.rounds}")
        print(f"{'mode':<12}{'ours jobs/s':>14}{'rq jobs/s':>12}{'ours/rq':>10}")
        for fork in (True, False):
            ours = min(
                run_ours(server.url, client, options.jobs, fork) for _ in range(options.rounds)
            )
            theirs = min(
                run_rq(server.url, client, options.jobs, fork) for _ in range(options.rounds)
            )
            client.flushdb()
            mode = "fork/job" if fork else "in-process"
            ours_rate, rq_rate = options.jobs / ours, options.jobs / theirs
            print(f"{mode:<12}{ours_rate:>14.0f}{rq_rate:>12.0f}{ours_rate / rq_rate:>10.2f}")
    finally:
        client.close()
        server.stop()


if __name__ == "__main__":
    main()
