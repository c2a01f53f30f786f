"""Memory of a pool of idle workers: django-resque-pool against rq's worker-pool and
against independent worker processes, in the same run.

    .venv/bin/python -m bench.memory [--workers 8]

Memory is the proportional set size (PSS) summed over the whole process tree, so pages
shared by copy-on-write are split among the processes that share them. Three set-ups:

- ours: ``manage.py resque_pool`` (Django loaded once, ``gc.freeze()``, then fork);
- django-rq: ``manage.py rqworker-pool -n N`` (Django loaded, then rq's WorkerPool forks);
- rq: ``rq worker-pool -n N`` (no Django at all: a floor, not a peer for a Django app);
- independent: N separate ``manage.py resque_work`` processes, as ``rake resque:work`` N
  times would run them without a pool.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable

import redis

from bench.common import PYTHON, ROOT, env_for, start_redis, tree_pss_kib

SETTLE_SECONDS = 2.0


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not register in time")
        time.sleep(0.1)


def stop(process: subprocess.Popen, sig: int = signal.SIGQUIT) -> None:
    try:
        os.killpg(process.pid, sig)
        process.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def measure_pool(
    cmd: list[str],
    env: dict[str, str],
    registered: Callable[[], bool],
    stop_signal: int = signal.SIGQUIT,
) -> int:
    """PSS of the process tree started by ``cmd``, once ``registered()`` says its workers
    are up and a moment has passed for them to settle."""
    process = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(registered)
        time.sleep(SETTLE_SECONDS)
        return tree_pss_kib(process.pid)
    finally:
        stop(process, stop_signal)


def measure_ours(url: str, client: redis.Redis, workers: int) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as config:
        config.write(f"bench: {workers}\n")
    try:
        cmd = [PYTHON, "manage.py", "resque_pool", "-c", config.name, "--no-pidfile"]
        return measure_pool(cmd, env_for(url), lambda: client.scard("bench:workers") >= workers)
    finally:
        os.unlink(config.name)


def _rq_registered(client: redis.Redis, workers: int) -> Callable[[], bool]:
    return lambda: client.scard("rq:workers") >= workers


def measure_rq(url: str, client: redis.Redis, workers: int) -> int:
    cmd = [PYTHON, "-m", "rq.cli", "worker-pool", "-n", str(workers), "--url", url, "bench"]
    return measure_pool(cmd, env_for(url), _rq_registered(client, workers), signal.SIGINT)


def measure_django_rq(url: str, client: redis.Redis, workers: int) -> int:
    cmd = [PYTHON, "manage.py", "rqworker-pool", "--num-workers", str(workers), "bench"]
    env = env_for(url, DJANGO_SETTINGS_MODULE="bench.django_rq_settings")
    return measure_pool(cmd, env, _rq_registered(client, workers), signal.SIGINT)


def measure_independent(url: str, client: redis.Redis, workers: int) -> int:
    processes = [
        subprocess.Popen(
            [PYTHON, "manage.py", "resque_work", "--queues", "bench"],
            env=env_for(url),
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        wait_for(lambda: client.scard("bench:workers") >= workers)
        time.sleep(SETTLE_SECONDS)
        return sum(tree_pss_kib(process.pid) for process in processes)
    finally:
        for process in processes:
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    options = parser.parse_args()
    server = start_redis()
    client = redis.Redis.from_url(server.url)
    try:
        results = {}
        for name, measure in (
            ("ours (pool)", measure_ours),
            ("django-rq pool", measure_django_rq),
            ("rq worker-pool", measure_rq),
            ("independent", measure_independent),
        ):
            client.flushdb()
            results[name] = measure(server.url, client, options.workers)
        ours = results["ours (pool)"]
        print(f"redis: {server.kind}; {options.workers} idle workers; PSS of the process tree")
        print(f"{'set-up':<18}{'PSS MiB':>10}{'ours/that':>11}")
        for name, kib in results.items():
            print(f"{name:<18}{kib / 1024:>10.1f}{ours / kib:>11.2f}")
    finally:
        client.close()
        server.stop()


if __name__ == "__main__":
    main()
