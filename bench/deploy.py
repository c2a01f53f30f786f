"""The "deploy" figure: shipping new code to a busy pool, HUP against the hot swaps.

``python -m bench.deploy [--workers 8] [--publish]``: a pool of N workers on the demo
project runs short jobs (50 ms, about 40 a second) and, when the deploy starts, two long
ones (6 s). The jobs module is then rewritten on disk and the new code shipped:

- **HUP**: ``kill -HUP`` of the master (a new generation loads the code, then takes the
  slots over one by one as the old workers finish);
- **hot swap**: a second ``manage.py resque_pool --hot-swap`` started beside the first,
  as resque-pool documents it; the new pool QUITs the old once its code and counts have
  loaded and forks into each slot an old worker leaves;
- **hot swap, all at once**: ``--hot-swap-all-at-once``, resque-pool's own: the new pool
  starts every worker, then QUITs the old once they registered.

Reported for each, sampled every 50 ms from the deploy until only new code runs: the peak
summed PSS of every process of the pool(s) against the steady PSS before, in units of one
loaded copy of the application (the RSS of the process that holds it: the generation, or
the hot swap's manager); the most workers seen at once; the seconds until every slot not
held by a long job runs the new code, and until every slot does; jobs lost and jobs run
twice (every job records each run in Redis). Written to ``bench/out/deploy.json``, or with
``--publish`` to ``bench/results-deploy.json`` (docs/benchmarks.md shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from bench.common import (
    NAMESPACE,
    PYTHON,
    ROOT,
    cleanup,
    env_for,
    launch,
    start_redis,
    stop_all,
    tree,
    wait_for,
)

QUEUE = "deploy"
SHORT = 0.05
LONG = 6.0
LONG_JOBS = 2
RATE = 40  # short jobs a second
METHODS = ("HUP", "hot swap", "hot swap, all at once")

JOBS = """\
import time

from resque_pool import job
from resque_pool.resque.connection import get_redis, key

RELEASE = {release!r}


@job(queue="deploy", name="DeployJob")
class DeployJob:
    @staticmethod
    def perform(token, seconds):
        time.sleep(float(seconds))
        client = get_redis()
        client.incr(key("deploy", "runs", str(token)))
        client.sadd(key("deploy", "releases"), RELEASE)
"""

SETTINGS = """\
from bench.settings import *  # noqa: F403
from bench.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "deploybench"]
"""


@dataclass
class Result:
    method: str
    workers: int
    steady_pss_mib: float = 0.0
    copy_mib: float = 0.0  # one loaded copy of the application: its manager's RSS
    peak_pss_mib: float = 0.0
    extra_copies: float = 0.0  # (peak - steady) / copy
    most_workers: int = 0
    seconds_idle_slots_new: float = 0.0
    seconds_all_slots_new: float = 0.0
    jobs: int = 0
    lost: int = 0
    run_twice: int = 0
    samples: list[tuple[float, float, int]] = field(default_factory=list)


class Project:
    """A throwaway project directory: the settings and the ``deploybench`` app."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
        app = self.directory / "deploybench"
        app.mkdir()
        (app / "__init__.py").write_text("")
        (self.directory / "deploy_settings.py").write_text(SETTINGS)
        (self.directory / "pool.yml").write_text(f"{QUEUE}: 0\n")
        self.release("first")

    def release(self, name: str) -> None:
        (self.directory / "deploybench" / "jobs.py").write_text(JOBS.format(release=name))

    def env(self, url: str) -> dict[str, str]:
        return env_for(
            url,
            DJANGO_SETTINGS_MODULE="deploy_settings",
            PYTHONPATH=f"{self.directory}:{ROOT}",
            INTERVAL="1",
        )


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def snapshot(roots: list[int]) -> tuple[float, list[int]]:
    """Summed PSS (MiB) of the trees and the pids of their workers: the children of a
    generation (or manager) that are neither a generation booting nor the scheduler; a
    job child's parent is its worker, so it does not count."""
    total = 0
    workers = []
    for root in roots:
        for pid in tree(root):
            with contextlib.suppress(OSError):
                total += pss_kib(pid)
            text = title(pid)
            if not text or text.startswith(("resque-pool-", "resque-scheduler")):
                continue
            if "resque_pool.management.generation" in text:
                continue
            if _parent_is_manager(pid):
                workers.append(pid)
    return total / 1024, workers


def _parent_is_manager(pid: int) -> bool:
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    return title(ppid).startswith(("resque-pool-generation[", "resque-pool-master["))


class Feeder(threading.Thread):
    """Short jobs at RATE a second; each gets a token, so lost and doubled runs show."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.tokens: list[str] = []
        self.running = True

    def push(self, seconds: float) -> None:
        token = f"t{len(self.tokens)}"
        self.tokens.append(token)
        payload = json.dumps({"class": "DeployJob", "args": [token, seconds]})
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(f"{NAMESPACE}:queues", QUEUE)
        pipe.rpush(f"{NAMESPACE}:queue:{QUEUE}", payload)
        pipe.rpush(f"{NAMESPACE}:wakeup:{QUEUE}", "1")
        pipe.ltrim(f"{NAMESPACE}:wakeup:{QUEUE}", 0, 63)
        pipe.execute()

    def run(self) -> None:
        while self.running:
            self.push(SHORT)
            time.sleep(1 / RATE)

    def stop(self) -> None:
        self.running = False
        self.join(5)


def measure(method: str, n: int, url: str) -> Result:
    client = redis.Redis.from_url(url)
    client.flushall()
    project = Project()
    config = project.directory / "pool.yml"
    config.write_text(f"{QUEUE}: {n}\n")
    env = project.env(url)
    base = [PYTHON, str(ROOT / "manage.py"), "resque_pool", "-c", str(config), "--no-scheduler"]
    swap = "--hot-swap-all-at-once" if method == "hot swap, all at once" else "--hot-swap"
    extra = [swap, "--lock", str(project.directory / "pool.lock")]
    first = launch(base if method == "HUP" else [*base, *extra], env)
    processes = [first]
    result = Result(method, n)
    try:
        wait_for(lambda: client.scard(f"{NAMESPACE}:workers") == n, 120, "the workers")
        feeder = Feeder(client)
        feeder.start()
        time.sleep(3)
        old_workers = set(snapshot([first.pid])[1])
        steady = [snapshot([first.pid])[0] for _ in range(5)]
        result.steady_pss_mib = sum(steady) / len(steady)
        for _ in range(LONG_JOBS):
            feeder.push(LONG)
        time.sleep(0.5)
        project.release("second-release")
        started = time.monotonic()
        if method == "HUP":
            first.send_signal(signal.SIGHUP)
        else:
            processes.append(launch([*base, *extra], env))
        idle_done = all_done = 0.0
        new_pids: set[int] = set()
        while time.monotonic() - started < 120:
            pss, workers = snapshot([p.pid for p in processes])
            now = time.monotonic() - started
            result.samples.append((round(now, 2), round(pss, 1), len(workers)))
            result.peak_pss_mib = max(result.peak_pss_mib, pss)
            result.most_workers = max(result.most_workers, len(workers))
            new_pids = set(workers) - old_workers
            fresh = len(new_pids)
            if not idle_done and fresh >= n - LONG_JOBS:
                idle_done = now
            if fresh == n and len(workers) == n:
                all_done = now
                break
            time.sleep(0.05)
        result.seconds_idle_slots_new = round(idle_done, 2)
        result.seconds_all_slots_new = round(all_done, 2)
        holder = _application_holder([p.pid for p in processes])
        result.copy_mib = round(rss_mib(holder), 1) if holder else 0.0
        feeder.stop()
        wait_for(lambda: client.llen(f"{NAMESPACE}:queue:{QUEUE}") == 0, 60, "the queue drained")
        time.sleep(LONG + 2)
        runs = [int(client.get(f"{NAMESPACE}:deploy:runs:{t}") or 0) for t in feeder.tokens]
        result.jobs = len(runs)
        result.lost = sum(1 for count in runs if count == 0)
        result.run_twice = sum(1 for count in runs if count > 1)
        result.extra_copies = (
            round((result.peak_pss_mib - result.steady_pss_mib) / result.copy_mib, 2)
            if result.copy_mib
            else 0.0
        )
        result.steady_pss_mib = round(result.steady_pss_mib, 1)
        result.peak_pss_mib = round(result.peak_pss_mib, 1)
    finally:
        stop_all(processes, signal.SIGTERM)
    return result


def _application_holder(roots: list[int]) -> int | None:
    """The process holding the newest loaded copy of the application: a generation."""
    for root in reversed(roots):
        for pid in tree(root):
            if title(pid).startswith("resque-pool-generation["):
                return pid
    return None


def report(results: list[Result]) -> str:
    lines = [
        "| method | steady PSS | one copy | peak PSS | extra copies | most workers | "
        "idle slots new | all slots new | jobs | lost | run twice |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.method} | {r.steady_pss_mib} MiB | {r.copy_mib} MiB | {r.peak_pss_mib} MiB "
            f"| {r.extra_copies} | {r.most_workers} (of {r.workers}) "
            f"| {r.seconds_idle_slots_new} s | {r.seconds_all_slots_new} s | {r.jobs} "
            f"| {r.lost} | {r.run_twice} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--output", type=Path, help="where the JSON goes (default: bench/out)")
    options = parser.parse_args(argv)
    server = start_redis()
    try:
        results = [measure(method, options.workers, server.url) for method in METHODS]
    finally:
        cleanup()
        server.stop()
    print(report(results))
    target = options.output or (
        ROOT / "bench" / ("results-deploy.json" if options.publish else "out/deploy.json")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
