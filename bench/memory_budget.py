"""The "memory budget" figure: memory-hungry jobs in a container whose limit is too small
for the configured workers, with the budget off (resque-pool's behaviour) and on.

``python -m bench.memory_budget [--workers 8] [--limit-mb 800] [--jobs 48] [--publish]``
(root, and a cgroup v1 or v2 memory controller this process may make a child cgroup in;
otherwise it says why and writes a "skipped" result). Each run starts ``manage.py
resque_pool`` inside a fresh child memory cgroup (``tests/support/cgroups.py``) limited to
``--limit-mb``, with ``--workers`` workers on one queue that recycle after each job
(``RESQUE_WORKER_MAX_JOBS = 1``: every job starts with a fork decision), then enqueues
``--jobs`` ``BenchAllocate`` jobs, each taking 60 to 150 MB (touched; a fixed seed, so both
runs get the same mix) for ``--hold`` seconds in its job child:

- **off**: ``RESQUE_POOL_MEMORY_BUDGET_MB = 0``: the pool forks the configured count, as
  resque-pool does, and the kernel's OOM killer picks victims (a job child, its job lost
  as a ``DirtyExit``, or a worker, or the manager);
- **on**: the setting unset: the budget is the cgroup's limit less 10 %.

Reported for each: the cgroup's OOM kills (v1 ``memory.oom_control``/v2 ``memory.events``
``oom_kill``) and ``memory.failcnt`` (times usage hit the limit, reclaim included; v1),
the most workers the pool refused at once and its "not forking" log lines, jobs completed
and lost (a ``DirtyExit`` in the failed list, or never done by the end), the wall time to
settle every job, and on/off ratios. Written to ``bench/out/memory.json``, or with
``--publish`` to ``bench/results-memory.json`` (docs/benchmarks.md shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from bench.common import NAMESPACE, PYTHON, ROOT, cleanup, env_for, launch, start_redis, stop
from resque_pool.capacity import cgroup
from tests.support import cgroups
from tests.support.settings_module import write_settings_module

QUEUE = "memory"
MODES = ("off", "on")
SEED = 29


@dataclass
class Result:
    mode: str
    workers: int
    limit_mb: int
    budget_mb: float | None = None
    jobs: int = 0
    completed: int = 0
    lost: int = 0
    oom_kills: int = 0
    failcnt: int | None = None
    most_refused: int = 0
    refusal_lines: int = 0
    most_workers: int = 0
    seconds: float = 0.0
    jobs_per_second: float = 0.0


def job_sizes(count: int) -> list[int]:
    rng = random.Random(SEED)
    return [rng.randint(60, 150) for _ in range(count)]


def measure(mode: str, options: argparse.Namespace, url: str, version: str) -> Result:
    result = Result(mode, options.workers, options.limit_mb)
    child = cgroups.make(version, prefix="resque-pool-bench")
    if isinstance(child, str):
        raise RuntimeError(child)
    directory = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    (directory / "pool.yml").write_text(f"{QUEUE}: {options.workers}\n")
    settings = {"RESQUE_WORKER_MAX_JOBS": 1, "RESQUE_POOL_STATE_TTL": 3}
    if mode == "off":
        settings["RESQUE_POOL_MEMORY_BUDGET_MB"] = 0
    module = write_settings_module(directory, "bench.settings", settings)
    env = env_for(url, INTERVAL="0.2", LOG_LEVEL="INFO", **module)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    log_path = directory / "pool.log"
    process = None
    try:
        child.set_limit(options.limit_mb * 2**20)
        command = [PYTHON, str(ROOT / "manage.py"), "resque_pool", "--no-scheduler"]
        command += ["-c", str(directory / "pool.yml")]
        with log_path.open("w") as log:
            process = launch(child.wrap(command), env, stdout=log, stderr=log)
        pool_key = _wait_for_pool(client, process)
        sizes = job_sizes(options.jobs)
        pipe = client.pipeline(transaction=False)
        pipe.sadd(f"{NAMESPACE}:queues", QUEUE)
        for n, megabytes in enumerate(sizes):
            payload = json.dumps(
                {"class": "BenchAllocate", "args": [f"j{n}", megabytes, options.hold]}
            )
            pipe.rpush(f"{NAMESPACE}:queue:{QUEUE}", payload)
        pipe.rpush(f"{NAMESPACE}:wakeup:{QUEUE}", "1")
        pipe.execute()
        result.jobs = len(sizes)
        started = time.monotonic()
        deadline = started + options.timeout
        while time.monotonic() < deadline:
            done = client.scard(f"{NAMESPACE}:memory:done")
            lost = _dirty_exits(client)
            state = _state(client, pool_key)
            memory = state.get("memory") or {}
            result.most_refused = max(result.most_refused, int(memory.get("refused") or 0))
            if memory.get("budget_bytes"):
                result.budget_mb = round(memory["budget_bytes"] / 2**20, 1)
            running = sum(len(p) for p in (state.get("workers") or {}).values())
            result.most_workers = max(result.most_workers, running)
            if done + lost >= len(sizes):
                break
            time.sleep(0.2)
        result.seconds = round(time.monotonic() - started, 1)
        result.completed = client.scard(f"{NAMESPACE}:memory:done")
        result.lost = len(sizes) - result.completed
        result.jobs_per_second = round(result.completed / result.seconds, 2)
        result.oom_kills = child.oom_kills()
        failcnt = child.path / "memory.failcnt"
        result.failcnt = int(failcnt.read_text()) if failcnt.exists() else None
        result.refusal_lines = len(re.findall(r"memory budget: not forking", log_path.read_text()))
    finally:
        if process is not None:
            stop(process, timeout=5)
        child.remove()
        client.close()
    return result


def _wait_for_pool(client: redis.Redis, process) -> str:
    """The key of the pool's published state, once it is running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the pool exited ({process.returncode})")
        for pool_id in client.smembers(f"{NAMESPACE}:pools"):
            state = _state(client, f"{NAMESPACE}:pool:{pool_id}")
            if state.get("status") == "running":
                return f"{NAMESPACE}:pool:{pool_id}"
        time.sleep(0.1)
    raise RuntimeError("the pool did not publish a running state within 60 s")


def _state(client: redis.Redis, pool_key: str) -> dict:
    with contextlib.suppress(TypeError, ValueError):
        state = json.loads(client.get(pool_key) or "{}")
        return state if isinstance(state, dict) else {}
    return {}


def _dirty_exits(client: redis.Redis) -> int:
    entries = client.lrange(f"{NAMESPACE}:failed", 0, -1)
    return sum(1 for entry in entries if "DirtyExit" in entry)


def ratios(off: Result, on: Result) -> dict[str, float | None]:
    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 2) if b else None

    return {
        "oom_kills on/off": ratio(on.oom_kills, off.oom_kills),
        "lost on/off": ratio(on.lost, off.lost),
        "completed on/off": ratio(on.completed, off.completed),
        "seconds on/off": ratio(on.seconds, off.seconds),
    }


def report(results: list[Result]) -> str:
    lines = [
        "| budget | limit | budget MB | most workers | most refused | refusal lines | OOM kills "
        "| failcnt | completed | lost | seconds | jobs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.limit_mb} MB | {r.budget_mb or '-'} | {r.most_workers} (of "
            f"{r.workers}) | {r.most_refused} | {r.refusal_lines} | {r.oom_kills} | {r.failcnt} "
            f"| {r.completed} of {r.jobs} | {r.lost} | {r.seconds} | {r.jobs_per_second} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--limit-mb", type=int, default=800)
    parser.add_argument("--jobs", type=int, default=48)
    parser.add_argument("--hold", type=float, default=1.0, help="seconds each job holds its memory")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--output", type=Path, help="where the JSON goes (default: bench/out)")
    options = parser.parse_args(argv)
    target = options.output or (
        ROOT / "bench" / ("results-memory.json" if options.publish else "out/memory.json")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    version = next((v for v in (cgroup.V1, cgroup.V2) if not isinstance(_probe(v), str)), None)
    if version is None:
        reason = _probe(cgroup.V1)
        print(f"memory budget figure: skipped ({reason})")
        target.write_text(json.dumps({"skipped": reason}, indent=1) + "\n")
        return 0
    server = start_redis()
    try:
        results = [measure(mode, options, server.url, version) for mode in MODES]
    finally:
        cleanup()
        server.stop()
    print(report(results))
    figures = {
        "cgroup": version,
        "hold_seconds": options.hold,
        "runs": [asdict(r) for r in results],
        "ratios": ratios(*results),
    }
    print(json.dumps(figures["ratios"]))
    target.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


def _probe(version: str) -> str | None:
    """None when a child memory cgroup of ``version`` can be made here, else why not."""
    child = cgroups.make(version, prefix="resque-pool-bench-probe")
    if isinstance(child, str):
        return child
    child.remove()
    return None


if __name__ == "__main__":
    sys.exit(main())
