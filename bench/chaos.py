"""Chaos: a real pool drains N jobs while its worker processes and job children are
SIGKILLed at random; then every job is accounted for.

With the default policy every job must be done or a failure entry; with
``RESQUE_REQUEUE_DIRTY_JOBS`` every job must be done (none failed, none lost), as long as no
job is interrupted ``RESQUE_MAX_INTERRUPTIONS`` times. ``tests/test_worker_chaos.py`` runs
a small round of it in the suite; ``python -m bench.chaos`` runs the large one whose figures
are in docs/reliability.md (it starts its own redis-server and stops by itself).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.common import is_generation
from resque_pool.resque import wire
from tests.support.settings_module import write_settings_module

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    jobs: int
    done: int
    failed: int  # jobs that ended only as a failure entry
    lost: list[str]
    kills: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stale_workers: int = 0
    failure_errors: list[str] = field(default_factory=list)
    # Tokens with more than one failure entry: a job that ended twice (two retry lineages).
    failed_twice: list[str] = field(default_factory=list)


def _children(pid: int) -> list[int]:
    """Direct children; a pool's generation stands for its own (its workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(part) for part in (task / "children").read_text().split())
    return [grandchild for child in found for grandchild in _through_generation(child)]


def _through_generation(pid: int) -> list[int]:
    if not is_generation(pid):
        return [pid]
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(part) for part in (task / "children").read_text().split())
    return found


def run(
    url: str,
    namespace: str,
    *,
    jobs: int,
    fork_per_job: bool,
    requeue: bool,
    workers: int = 4,
    kill_every: float = 0.3,
    kill_for: float = 3.0,
    job_seconds: float = 0.01,
    timeout: float = 120.0,
    seed: int | None = None,
    log_path: Path | None = None,
    job: str = "SlowRecord",
) -> Result:
    """Drain ``jobs`` jobs with a pool of ``workers`` while killing a worker or a job child
    every ``kill_every`` seconds during the first ``kill_for`` seconds after the first worker
    starts. ``job`` takes ``(token, seconds)``: ``SlowRecord`` records its token when done;
    ``RetryChaos`` (tests/support/retry_jobs.py) fails every attempt and is retried at once
    up to its limit, so each job must end as exactly one give-up entry."""
    rng = random.Random(seed)
    client = redis.Redis.from_url(url, decode_responses=True)
    tokens = [f"j{n}" for n in range(jobs)]
    pipe = client.pipeline(transaction=False)
    pipe.sadd(f"{namespace}:queues", "demo")
    for token in tokens:
        pipe.rpush(f"{namespace}:queue:demo", wire.job_payload(job, [token, job_seconds]))
    pipe.execute()
    workdir = Path(tempfile.mkdtemp(prefix="resque-chaos-"))
    config = workdir / "pool.yml"
    config.write_text(f"demo: {workers}\n")
    env = dict(os.environ)
    env.update(
        RESQUE_REDIS_URL=url,
        RESQUE_NAMESPACE=namespace,
        INTERVAL="0.1",
        FORK_PER_JOB="true" if fork_per_job else "false",
        LOG_LEVEL="WARNING",
    )
    # The test suite's pool settings, with the loss policy asked for.
    env.update(write_settings_module(workdir, settings={"RESQUE_REQUEUE_DIRTY_JOBS": requeue}))
    log = open(log_path or workdir / "pool.log", "w")  # noqa: SIM115 (closed below)
    started = time.monotonic()
    pool = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "resque_pool", "-c", str(config)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    kills = {"worker": 0, "job child": 0}
    try:
        deadline = started + timeout
        # The kill window opens when the first worker exists, not at launch: on a loaded
        # machine loading Django alone can outlast it.
        window_opened: float | None = None
        next_kill = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if window_opened is None and _children(pool.pid):
                window_opened, next_kill = now, now + kill_every
            if window_opened is not None and now - window_opened < kill_for and now >= next_kill:
                next_kill = now + kill_every * rng.uniform(0.5, 1.5)
                _kill_one(pool.pid, fork_per_job, rng, kills)
            if _drained(client, namespace, tokens):
                break
            time.sleep(0.01)
        seconds = time.monotonic() - started
    finally:
        os.killpg(pool.pid, signal.SIGTERM)
        try:
            pool.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, signal.SIGKILL)
            pool.wait(10)
        log.close()
    done = client.smembers(f"{namespace}:demo:done")
    failed_tokens: set[str] = set()
    failed_twice: set[str] = set()
    errors = []
    for raw in client.lrange(f"{namespace}:failed", 0, -1):
        entry = wire.loads(raw)
        token = str(entry["payload"]["args"][0])
        if token in failed_tokens:
            failed_twice.add(token)
        failed_tokens.add(token)
        errors.append(f"{entry['exception']}: {entry['error']}")
    stale = [
        worker_id
        for worker_id in client.smembers(f"{namespace}:workers")
        if client.exists(f"{namespace}:worker:{worker_id}")
    ]
    return Result(
        jobs=jobs,
        done=len(done & set(tokens)),
        failed=len(failed_tokens - done),
        lost=sorted(set(tokens) - done - failed_tokens),
        kills=kills,
        seconds=seconds,
        stale_workers=len(stale),
        failure_errors=errors,
        failed_twice=sorted(failed_twice),
    )


def _drained(client: redis.Redis, namespace: str, tokens: list[str]) -> bool:
    if client.llen(f"{namespace}:queue:demo"):
        return False
    for worker_id in client.smembers(f"{namespace}:workers"):
        if client.exists(f"{namespace}:worker:{worker_id}"):
            return False
    accounted = client.scard(f"{namespace}:demo:done") + client.llen(f"{namespace}:failed")
    return accounted >= len(tokens)


def _kill_one(manager: int, fork_per_job: bool, rng: random.Random, kills: dict) -> None:
    workers = _children(manager)
    if not workers:
        return
    worker = rng.choice(workers)
    children = _children(worker) if fork_per_job else []
    target, kind = (
        (rng.choice(children), "job child")
        if children and rng.random() < 0.5
        else (
            worker,
            "worker",
        )
    )
    try:
        os.kill(target, signal.SIGKILL)
    except ProcessLookupError:
        return
    kills[kind] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--kill-every", type=float, default=0.04)
    parser.add_argument("--kill-for", type=float, default=3.0, help="seconds of kills")
    parser.add_argument("--job-seconds", type=float, default=0.002)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    from bench.common import start_redis

    server = start_redis()
    try:
        print(
            "| mode | policy | jobs | kills (workers / job children) | done | failed | lost "
            "| stale workers | seconds |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for fork_per_job in (True, False):
            for requeue in (False, True):
                namespace = f"chaos-{int(fork_per_job)}{int(requeue)}-{os.getpid()}"
                result = run(
                    server.url,
                    namespace,
                    jobs=args.jobs,
                    fork_per_job=fork_per_job,
                    requeue=requeue,
                    workers=args.workers,
                    kill_every=args.kill_every,
                    kill_for=args.kill_for,
                    job_seconds=args.job_seconds,
                    timeout=args.timeout,
                    seed=1,
                )
                print(
                    f"| {'fork per job' if fork_per_job else 'in-process'} "
                    f"| {'requeue' if requeue else 'default'} | {result.jobs} "
                    f"| {result.kills['worker']} / {result.kills['job child']} "
                    f"| {result.done} | {result.failed} | {len(result.lost)} "
                    f"| {result.stale_workers} | {result.seconds:.1f} |",
                    flush=True,
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
