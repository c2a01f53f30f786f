"""Fixtures for the pool's process tests: start a manager with its output in a file, and
look at it (workers, proclines, log); every process it left is killed at teardown."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.common import wait_until
from tests.support.processes import kill_tree, pool_children, worker_titles

# INTERVAL reaches the workers through the inherited environment; short, so jobs start fast.
SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.support.pool_settings", "INTERVAL": "0.2"}


@dataclass
class Pool:
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        return pool_children(self.pid)

    def titles(self) -> dict[int, str]:
        return worker_titles(self.pid)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def state(self, timeout: float = 20) -> dict:
        """The live state this manager publishes in Redis for the admin (``counts``,
        ``source``, ``workers``, ``status``...; resque_pool/pool/state.py), once it has
        published one. Prefer it to a log line that says the same."""
        from resque_pool.pool import state as pool_state

        def published():
            return next((p for p in pool_state.all_pools() if p["pid"] == self.pid), None)

        return wait_until(
            published, timeout, 0.1, lambda: f"a published state (log:\n{self.log()})"
        )

    def wait_for_log(self, pattern: str, timeout: float = 20) -> re.Match:
        return wait_until(
            lambda: re.search(pattern, self.log()), timeout, 0.1, f"log line {pattern!r}"
        )

    def wait_for_workers(self, expected: dict[str, int], timeout: float = 30) -> dict[int, str]:
        """Until the workers waiting on each queue list are exactly ``expected`` (a
        scheduler child, ``resque-scheduler[...]``, is not a worker)."""

        def matches():
            titles = {
                pid: title
                for pid, title in self.titles().items()
                if not title.startswith("resque-scheduler")
            }
            seen: dict[str, int] = {}
            for title in titles.values():
                found = re.search(r"resque-[\d.]+: Waiting for (\S+)", title)
                if not found:
                    return None
                seen[found.group(1)] = seen.get(found.group(1), 0) + 1
            return [titles] if seen == expected else None  # a list: truthy even when empty

        found = wait_until(
            matches, timeout, 0.1, lambda: f"workers {expected} (log:\n{self.log()})"
        )
        return found[0]

    def wait_exit(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)


@pytest.fixture
def start_pool(spawn_manage, tmp_path):
    """``start_pool(*resque_pool_args, settings={...}, env={...})``: a manager started with
    ``tests.support.pool_settings`` (plus ``settings``, written to a module of this test's)."""
    pools: list[Pool] = []

    def start(
        *args: str, env: dict | None = None, settings: dict | None = None, name: str = "pool"
    ) -> Pool:
        log_path = tmp_path / f"{name}-{len(pools)}.log"
        handle = log_path.open("w")
        process = spawn_manage(
            "resque_pool",
            *args,
            env={**SETTINGS, **(env or {})},
            settings=settings,
            stdout=handle,
            stderr=handle,
        )
        handle.close()
        pool = Pool(process, log_path)
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        kill_tree(pool.pid)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def registered(resque) -> set[str]:
    return resque.client.smembers(resque.key("workers"))


def first_failure(resque, pool, timeout: float = 60.0) -> dict:
    """Wait (bounded) for the failed list to hold an entry and return the oldest, decoded;
    the pool's log goes into the failure message."""
    wait_until(
        lambda: resque.client.llen(resque.key("failed")),
        timeout=timeout,
        message=lambda: f"a failure entry (log:\n{pool.log()})",
    )
    return json.loads(resque.client.lindex(resque.key("failed"), 0))


def processing_worker(resque) -> str | None:
    for worker_id in registered(resque):
        if resque.client.get(resque.key("worker", worker_id)):
            return worker_id
    return None


def log_times(log: str, pattern: str) -> list[float]:
    """Epoch seconds of the log lines (``%(asctime)s`` first) whose message matches."""
    times = []
    for line in log.splitlines():
        found = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", line)
        if found and re.search(pattern, line):
            stamp = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")
            times.append(stamp.timestamp() + int(found.group(2)) / 1000)
    return times


@dataclass
class Busy:
    pool: Pool
    workers: list[int]  # spawn order
    worker_id: str  # the Resque id of the worker running the job


@pytest.fixture
def busy_pool(start_pool, tmp_path, resque):
    """A pool of ``count`` workers on ``demo`` (from a file), one of them running
    ``Sleep(seconds)``."""
    from resque_pool import enqueue

    def start(
        seconds: float,
        *args: str,
        count: int = 1,
        env: dict | None = None,
        settings: dict | None = None,
    ) -> Busy:
        config = write(tmp_path / "pool.yml", f"demo: {count}\n")
        pool = start_pool(*args, "-c", str(config), env=env, settings=settings)
        workers = list(pool.wait_for_workers({"demo": count}))
        enqueue("Sleep", seconds)
        worker_id = wait_until(lambda: processing_worker(resque), 20, message="a job in flight")
        return Busy(pool, workers, worker_id)

    return start
