"""The "autoscale" figure (issue 29): a burst of jobs against our autoscaled list and
Celery's ``--autoscale``, seconds to the maximum, to drain the burst, and back to the floor.

```sh
.venv/bin/python -m bench.autoscale                      # bench/out/autoscale.json
.venv/bin/python -m bench.autoscale --publish            # bench/results-autoscale.json
.venv/bin/python -m bench.autoscale --jobs 40 --max 3 --cooldown 2 --repetitions 1
```

- **ours**: ``manage.py resque_pool --no-scheduler -c pool.yml`` with ``bench: <floor>``
  and ``autoscale: {bench: <max>}``; ``RESQUE_POOL_AUTOSCALE_INTERVAL`` and
  ``RESQUE_POOL_AUTOSCALE_COOLDOWN`` come from ``bench/settings.py`` (``BENCH_AUTOSCALE_*``
  in the environment), ``RESQUE_POOL_AUTOSCALE_LATENCY`` is its default, 0;
- **celery**: ``celery worker --pool prefork --autoscale=<max>,<floor>`` on the Redis
  broker (``bench/celery_app.py``), its keep-alive ``AUTOSCALE_KEEPALIVE`` set to our
  cooldown; its prefetch settings are Celery's defaults, reported with the results.

Both run the same jobs (``bench/burst.py``): ``--jobs`` tokens, each sleeping a duration
drawn once between ``--job-ms`` bounds, run in the worker process (``FORK_PER_JOB=false``
for ours, as Celery's pool children run tasks; ``--fork-per-job`` for our default). Once the
floor's workers are up, the burst is staged in a list of its own and moved into the live
queue with one ``RENAME`` (ours: plus the wake-up tokens ``enqueue()`` would have pushed),
so it starts at a known instant. Repetition i of N waits (i + 1/2)/N of the system's decision
cycle before its burst (ours: the look interval; Celery: the keep-alive), so the bursts
fall evenly through it. Then every ``--sample`` seconds the harness counts the
worker processes (ours: the children of the generation that are workers, not job children;
Celery: the children of its main process, the pool) and the jobs done, until the burst is
done and the count is back at the floor (each phase bounded). Reported, medians of
``--repetitions`` (the systems alternate): seconds from the burst to the most workers
reached, to the last job done (its own clock), and from then back to the floor; the most
workers; jobs lost and jobs run twice (every run counts its token); and ours / celery.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import redis

from bench.burst import FINISHED_KEY, RUNS_KEY
from bench.common import (
    NAMESPACE,
    PYTHON,
    QUEUE,
    ROOT,
    BenchError,
    cleanup,
    env_for,
    launch,
    start_redis,
    stop_all,
    tree,
    wait_for,
)
from bench.systems import Ours

DEFAULT_INTERVAL = 2.0  # RESQUE_POOL_AUTOSCALE_INTERVAL's default (resque_pool/conf.py)
FIGURES = ("to the maximum", "drain", "back to the floor")


@dataclass
class Settings:
    jobs: int
    floor: int
    maximum: int
    job_ms: tuple[int, int]
    cooldown: float  # ours' RESQUE_POOL_AUTOSCALE_COOLDOWN = Celery's AUTOSCALE_KEEPALIVE
    interval: float  # ours' RESQUE_POOL_AUTOSCALE_INTERVAL
    latency: float = 0.0  # ours' RESQUE_POOL_AUTOSCALE_LATENCY (its default)
    fork_per_job: bool = False
    sample: float = 0.1
    celery: dict = field(default_factory=dict)  # Celery's prefetch settings, as they ran


@dataclass
class Run:
    system: str
    repetition: int
    burst_at: str = ""  # the RENAME's wall clock, to read the systems' logs against
    phase_s: float = 0.0  # waited after the floor settled, to step through the look cycle
    to_max_s: float | None = None  # burst -> first sample at the most workers seen
    drain_s: float | None = None  # burst -> the last job's finish (its own clock)
    to_floor_s: float | None = None  # last job done -> first sample back at the floor
    peak_workers: int = 0
    jobs: int = 0
    done: int = 0  # distinct jobs that ran
    lost: int = 0
    run_twice: int = 0
    shrinks_while_jobs_left: int = 0  # samples where the count fell before the drain ended
    scaling_log: list[str] = field(default_factory=list)  # each system's own scaling lines
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (s, workers, done)
    error: str = ""


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def exited(pid: int) -> bool:
    """A zombie (exited, not yet reaped) or gone: no longer a worker process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def direct_children(pid: int) -> list[int]:
    """The live children of ``pid`` (Celery's pool processes)."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(child) for child in (task / "children").read_text().split())
    return [child for child in found if not exited(child)]


def pool_workers(root: int) -> list[int]:
    """Our pool's worker processes: children of a generation (or of a lone manager) that
    are neither a generation booting nor the scheduler (a job child's parent is its
    worker, so it does not count), as ``bench/deploy.py`` counts them."""
    workers = []
    for pid in tree(root)[1:]:
        if exited(pid):
            continue
        text = title(pid)
        if not text or text.startswith(("resque-pool-", "resque-scheduler")):
            continue
        if "resque_pool.management.generation" in text:
            continue
        up = parent(pid)
        if up is not None and title(up).startswith(
            ("resque-pool-generation[", "resque-pool-master[")
        ):
            workers.append(pid)
    return workers


class Subject:
    """One system under the burst: how it starts, counts its workers, takes the burst."""

    name = ""
    needs: tuple[str, ...] = ()
    stop_signal = signal.SIGTERM

    def __init__(self, settings: Settings, url: str, directory: Path) -> None:
        self.settings = settings
        self.url = url
        self.directory = directory
        self.process: subprocess.Popen | None = None
        self.log_path = directory / f"{self.name}.log"

    def skip_reason(self) -> str | None:
        missing = [module for module in self.needs if importlib.util.find_spec(module) is None]
        return f"not installed: {', '.join(missing)}" if missing else None

    def start(self) -> None:
        raise NotImplementedError

    def cycle(self) -> float:
        """The period at which the system decides (see ``phase``)."""
        raise NotImplementedError

    def ready(self, client: redis.Redis) -> bool:
        raise NotImplementedError

    def workers(self) -> int:
        raise NotImplementedError

    def stage(self, client: redis.Redis, burst: list[tuple[str, float]]) -> None:
        raise NotImplementedError

    def release(self, client: redis.Redis) -> None:
        raise NotImplementedError

    def scaling_log(self) -> list[str]:
        raise NotImplementedError

    def _launch(self, cmd: list[str], env: dict[str, str]) -> None:
        with open(self.log_path, "w") as log:
            self.process = launch(cmd, env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is not None:
            stop_all([self.process], self.stop_signal, timeout=10.0)
            self.process = None


class OursSubject(Subject):
    name = "ours"
    stop_signal = signal.SIGQUIT  # graceful, as resque-pool's own shutdown

    def start(self) -> None:
        s = self.settings
        config = self.directory / "pool.yml"
        config.write_text(f"{QUEUE}: {s.floor}\nautoscale:\n  {QUEUE}: {s.maximum}\n")
        cmd = [PYTHON, "manage.py", "resque_pool", "--no-pidfile", "--no-scheduler"]
        cmd += ["-c", str(config)]
        env = env_for(
            self.url,
            FORK_PER_JOB="true" if s.fork_per_job else "false",
            BENCH_AUTOSCALE_INTERVAL=repr(s.interval),
            BENCH_AUTOSCALE_COOLDOWN=repr(s.cooldown),
            LOG_LEVEL="INFO",  # the autoscale decisions, one line each
        )
        self._launch(cmd, env)

    def cycle(self):
        return self.settings.interval  # RESQUE_POOL_AUTOSCALE_INTERVAL: one look each

    def ready(self, client):
        registered = client.scard(f"{NAMESPACE}:workers")
        return registered == self.settings.floor and self.workers() == self.settings.floor

    def workers(self):
        return len(pool_workers(self.process.pid)) if self.process else 0

    def stage(self, client, burst):
        staging = Ours.queue_key + "-staging"
        pipe = client.pipeline(transaction=False)
        pipe.sadd(f"{NAMESPACE}:queues", QUEUE)
        for token, seconds in burst:
            payload = {"class": "BenchSleep", "args": [token, seconds]}
            pipe.rpush(staging, json.dumps(payload, separators=(",", ":")))
        pipe.execute()

    def release(self, client):
        Ours().release(client)  # one RENAME, and the wake-up tokens enqueue() pushes

    def scaling_log(self):
        pattern = re.compile(rf"autoscale {QUEUE}: \d+ -> \d+ workers: .*")
        return _matches(self.log_path, pattern)


class CelerySubject(Subject):
    name = "celery"
    needs = ("celery",)
    stop_signal = signal.SIGTERM  # Celery's warm shutdown

    def start(self) -> None:
        s = self.settings
        cmd = [PYTHON, "-m", "celery", "-A", "bench.celery_app", "worker", "--pool", "prefork"]
        cmd += [f"--autoscale={s.maximum},{s.floor}", "-Q", QUEUE, "--loglevel", "INFO"]
        cmd += ["-n", f"autoscale{os.getpid()}@%h"]
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = env_for(self.url, AUTOSCALE_KEEPALIVE=repr(s.cooldown))
        self._launch(cmd, env)

    def cycle(self):
        return self.settings.cooldown  # hub.call_repeatedly(keepalive, maybe_scale)

    def ready(self, client):
        from bench.celery_app import READY_KEY

        return bool(client.exists(READY_KEY)) and self.workers() == self.settings.floor

    def workers(self):
        return len(direct_children(self.process.pid)) if self.process else 0

    def stage(self, client, burst):
        from bench.celery_app import app, sleep

        with app.producer_or_acquire() as producer:
            for token, seconds in burst:
                sleep.apply_async((token, seconds), queue=f"{QUEUE}-staging", producer=producer)

    def release(self, client):
        client.rename(f"{QUEUE}-staging", QUEUE)

    def scaling_log(self):
        return _matches(self.log_path, re.compile(r"Scaling (up|down) \d+ processes\."))


SUBJECTS = {subject.name: subject for subject in (OursSubject, CelerySubject)}


def _matches(path: Path, pattern: re.Pattern) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        match = pattern.search(line)
        if match:
            stamp = line.split(" ", 2)[:2] if line[:2] in ("20", "[2") else []
            found.append(" ".join([*stamp, match.group(0)]).strip())
    return found


def burst(settings: Settings, seed: int) -> list[tuple[str, float]]:
    """The jobs: a token and a duration each, the same for every system of a repetition."""
    rng = random.Random(seed)
    low, high = settings.job_ms
    return [(f"j{n}", round(rng.uniform(low, high) / 1000, 4)) for n in range(settings.jobs)]


def phase(cycle: float, repetition: int, repetitions: int) -> float:
    """Seconds to wait before the burst, beyond the settling second: repetition i of N
    waits (i + 1/2) / N of the system's cycle, so its bursts fall evenly through it. Ours:
    the look interval (it grows and shrinks only at a look); Celery: its keep-alive (it
    grows as messages arrive, but checks for a shrink only every keep-alive from its
    start). Without it the burst fell at the same moment of our cycle in every run (just
    after a look: a whole interval before the pool saw it), because the pool looks first
    as it starts and the harness's "ready" comes a steady time later."""
    return round(cycle * (repetition + 0.5) / repetitions, 3)


def measure(subject: Subject, repetition: int, options: argparse.Namespace) -> Run:
    s = subject.settings
    client = redis.Redis.from_url(subject.url)
    client.flushall()
    jobs = burst(s, seed=repetition)
    run = Run(subject.name, repetition, jobs=len(jobs))
    run.phase_s = phase(subject.cycle(), repetition, options.repetitions)
    try:
        subject.start()
        wait_for(lambda: subject.ready(client), options.start_timeout, "the floor's workers", 0.1)
        time.sleep(1.0 + run.phase_s)  # settled (no decision pending from the start), then
        # the repetition's moment of our look cycle
        subject.stage(client, jobs)
        started_wall = time.time()
        started = time.monotonic()
        subject.release(client)
        run.burst_at = datetime.fromtimestamp(started_wall).isoformat(timespec="milliseconds")
        drained_at = floor_at = None
        while True:
            now = time.monotonic() - started
            workers = subject.workers()
            done = client.hlen(RUNS_KEY)
            if run.samples and workers < run.samples[-1][1] and drained_at is None:
                run.shrinks_while_jobs_left += 1
            run.samples.append((round(now, 2), workers, done))
            if drained_at is None and done >= len(jobs):
                drained_at = now
            if drained_at is not None and workers <= s.floor:
                floor_at = now
                break
            if drained_at is None and now > options.drain_timeout:
                run.error = f"{done} of {len(jobs)} jobs done after {options.drain_timeout:g}s"
                break
            if drained_at is not None and now - drained_at > options.floor_timeout:
                run.error = f"still {workers} workers {options.floor_timeout:g}s after the drain"
                break
            time.sleep(max(0.0, s.sample - (time.monotonic() - started - now)))
        run.peak_workers = max(workers for _, workers, _ in run.samples)
        run.to_max_s = next(t for t, workers, _ in run.samples if workers == run.peak_workers)
        runs = {token.decode(): int(count) for token, count in client.hgetall(RUNS_KEY).items()}
        run.done = len(runs)
        run.lost = sum(1 for token, _ in jobs if token not in runs)
        run.run_twice = sum(1 for count in runs.values() if count > 1)
        finished = [float(stamp) for stamp in client.lrange(FINISHED_KEY, 0, -1)]
        if drained_at is not None and finished:
            run.drain_s = round(max(finished) - started_wall, 2)
        if floor_at is not None and run.drain_s is not None:
            run.to_floor_s = round(max(floor_at - run.drain_s, 0.0), 2)
    except BenchError as error:
        run.error = str(error)
    finally:
        subject.stop()
        run.scaling_log = subject.scaling_log()
    return run


def medians(runs: list[Run]) -> dict:
    def middle(values):
        values = [value for value in values if value is not None]
        return round(statistics.median(values), 2) if values else None

    return {
        "to the maximum": middle([r.to_max_s for r in runs]),
        "drain": middle([r.drain_s for r in runs]),
        "back to the floor": middle([r.to_floor_s for r in runs]),
        "peak workers": middle([r.peak_workers for r in runs]),
        "jobs": sum(r.jobs for r in runs),
        "lost": sum(r.lost for r in runs),
        "run twice": sum(r.run_twice for r in runs),
        "shrinks while jobs were left": sum(r.shrinks_while_jobs_left for r in runs),
        "repetitions": len(runs),
        "errors": [r.error for r in runs if r.error],
    }


def ratios(summary: dict[str, dict]) -> dict[str, float | None]:
    ours, celery = summary.get("ours"), summary.get("celery")
    if not ours or not celery or "skipped" in ours or "skipped" in celery:
        return {}  # a peer not installed: no ratio rather than a row of None
    result = {}
    for figure in (*FIGURES, "peak workers"):
        mine, theirs = ours.get(figure), celery.get(figure)
        result[figure] = round(mine / theirs, 2) if mine is not None and theirs else None
    return result


def celery_settings() -> dict:
    """Celery's settings that decide how its autoscaler sees demand, as this run had them."""
    if importlib.util.find_spec("celery") is None:
        return {}
    from bench.celery_app import app

    multiplier = app.conf.worker_prefetch_multiplier
    return {
        "worker_prefetch_multiplier": multiplier,
        "task_acks_late": app.conf.task_acks_late,
        "pool": "prefork",
        "broker": "redis",
    }


def describe(s: Settings) -> str:
    low, high = s.job_ms
    lines = [
        f"{s.jobs:,} jobs of {low}-{high} ms, floor {s.floor}, maximum {s.maximum}; "
        f"cooldown {s.cooldown:g} s for both (ours: RESQUE_POOL_AUTOSCALE_COOLDOWN, "
        f"Celery: AUTOSCALE_KEEPALIVE, its default 30 s)",
        f"ours: RESQUE_POOL_AUTOSCALE_INTERVAL {s.interval:g} s, LATENCY {s.latency:g} s, "
        f"jobs {'forked per job' if s.fork_per_job else 'in the worker process'}",
    ]
    if s.celery:
        multiplier = s.celery["worker_prefetch_multiplier"]
        lines.append(
            f"celery: prefork, worker_prefetch_multiplier {multiplier} (a prefetch of "
            f"{s.maximum * multiplier} = maximum x multiplier, Celery's default), "
            f"task_acks_late {s.celery['task_acks_late']}"
        )
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def report(summary: dict[str, dict], ratio: dict, settings: Settings) -> str:
    lines = [
        "| system | to the maximum | drain the burst | back to the floor | peak workers "
        "| jobs, all runs | lost | run twice |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system, row in summary.items():
        if row.get("skipped"):
            lines.append(f"| {system} | skipped ({row['skipped']}) | | | | | | |")
            continue
        lines.append(
            f"| {system} | {seconds(row['to the maximum'])} | {seconds(row['drain'])} "
            f"| {seconds(row['back to the floor'])} | {row['peak workers']} "
            f"(of {settings.maximum}) | {row['jobs']} | {row['lost']} | {row['run twice']} |"
        )
    if ratio:

        def shown(value):
            return "-" if value is None else f"{value:.2f}"

        lines.append(
            f"| ours / celery | {shown(ratio['to the maximum'])} | {shown(ratio['drain'])} "
            f"| {shown(ratio['back to the floor'])} | {shown(ratio['peak workers'])} | | | |"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the burst")
    parser.add_argument("--floor", type=int, default=1, help="workers at rest")
    parser.add_argument("--max", type=int, default=8, dest="maximum", help="most workers")
    parser.add_argument(
        "--job-ms", default="50,100", help="each job sleeps between these (ms, default 50,100)"
    )
    parser.add_argument(
        "--cooldown",
        type=float,
        default=10.0,
        help="ours' RESQUE_POOL_AUTOSCALE_COOLDOWN and Celery's AUTOSCALE_KEEPALIVE (s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        help="ours' RESQUE_POOL_AUTOSCALE_INTERVAL (s; default its default)",
    )
    parser.add_argument("--fork-per-job", action="store_true", help="ours forks per job")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--systems", default="ours,celery")
    parser.add_argument("--sample", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("--start-timeout", type=float, default=120.0)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument(
        "--floor-timeout", type=float, help="after the drain (default 3 x cooldown + 30 s)"
    )
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--output", type=Path, help="where the JSON goes (default: bench/out)")
    options = parser.parse_args(argv)
    low, _, high = options.job_ms.partition(",")
    options.job_ms = (int(low), int(high or low))
    if options.floor_timeout is None:
        options.floor_timeout = 3 * options.cooldown + 30
    unknown = [name for name in options.systems.split(",") if name not in SUBJECTS]
    if unknown:
        parser.error(f"unknown systems: {', '.join(unknown)}")
    if options.cooldown <= 0:
        parser.error("--cooldown must be above 0 (Celery refuses a keep-alive of 0)")
    return options


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    settings = Settings(
        jobs=options.jobs,
        floor=options.floor,
        maximum=options.maximum,
        job_ms=options.job_ms,
        cooldown=options.cooldown,
        interval=options.interval,
        fork_per_job=options.fork_per_job,
        sample=options.sample,
    )
    server = start_redis()
    os.environ["BENCH_REDIS_URL"] = server.url  # bench.celery_app reads it on import
    directory = Path(tempfile.mkdtemp(prefix="bench-autoscale-"))
    names = options.systems.split(",")
    subjects = [SUBJECTS[name](settings, server.url, directory) for name in names]
    skipped = {subject.name: subject.skip_reason() for subject in subjects}
    if "celery" in skipped and not skipped["celery"]:
        settings.celery = celery_settings()
    runs: list[Run] = []
    try:
        for repetition in range(options.repetitions):
            for subject in subjects:
                if skipped[subject.name]:
                    continue
                run = measure(subject, repetition, options)
                runs.append(run)
                print(
                    f"{run.system} #{repetition + 1}: to max {seconds(run.to_max_s)}, "
                    f"drain {seconds(run.drain_s)}, back to floor {seconds(run.to_floor_s)}, "
                    f"peak {run.peak_workers}, lost {run.lost}"
                    + (f" ({run.error})" if run.error else ""),
                    flush=True,
                )
    finally:
        cleanup()
        server.stop()
    summary: dict[str, dict] = {}
    for subject in subjects:
        if skipped[subject.name]:
            print(f"{subject.name}: skipped ({skipped[subject.name]})")
            summary[subject.name] = {"skipped": skipped[subject.name]}
        else:
            summary[subject.name] = medians([r for r in runs if r.system == subject.name])
    ratio = ratios(summary)
    print(describe(settings))
    print(report(summary, ratio, settings))
    target = options.output or (
        ROOT / "bench" / ("results-autoscale.json" if options.publish else "out/autoscale.json")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "settings": asdict(settings),
        "medians": summary,
        "ratios": ratio,
        "runs": [asdict(run) for run in runs],
    }
    target.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if any(run.error for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
