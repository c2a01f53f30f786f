"""Idle Redis commands per second for a whole pool, by kind of command, beside rq and Celery;
and how fast an idle pool answers signals.

```sh
.venv/bin/python -m bench.idle --n 16 64 --window 20     # the commands, by kind
.venv/bin/python bench/run.py --figures idle_pool,signals # the same as figures, in a run
```

Each system starts N idle workers on a private redis-server (ours with its scheduler child,
which reads the demo project's database: a fresh migrated SQLite file), waits until they
are registered and settled, and counts what Redis ran over the window with ``INFO
commandstats`` deltas (commands run inside scripts count too; ``INFO`` itself does not).
Prints one line per system and N, and the top commands for ours.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time

import redis

from bench.common import (
    PYTHON,
    ROOT,
    BenchError,
    cleanup,
    env_for,
    median,
    percentile,
    start_redis,
    wait_for,
)
from bench.figures import Bench, _started, log
from bench.systems import FORK, SYSTEMS, Ours, Running, launch

# The sizes of the whole-pool idle figure: the idle cost must not grow with the workers.
IDLE_POOL_N = (16, 64)


class OursWithScheduler(Ours):
    """The pool as deployed: its scheduler child on (it reads the database)."""

    name = "ours"

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def launch(self, url, n, mode=FORK, **env):
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as config:
            config.write(f"bench: {n}\n")
        cmd = [PYTHON, "manage.py", "resque_pool", "--no-pidfile", "-c", config.name]
        env.setdefault("FORK_PER_JOB", "true")
        env.setdefault("DATABASE_URL", self.database_url)
        process = launch(cmd, env_for(url, **env))
        return Running([process], self.stop_signal, [config.name])


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command so far (``INFO`` left out: it is the measurement's own)."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): entry["calls"]
        for name, entry in stats.items()
        if name != "cmdstat_info"
    }


def idle_rates(
    client: redis.Redis, window: float, settle: float = 3.0
) -> tuple[float, dict[str, float]]:
    """(commands per second in all, per command) over ``window`` after ``settle``."""
    time.sleep(settle)
    before = command_calls(client)
    time.sleep(window)
    after = command_calls(client)
    per_kind = {
        name: (calls - before.get(name, 0)) / window
        for name, calls in after.items()
        if calls != before.get(name, 0)
    }
    return sum(per_kind.values()), per_kind


def migrated_database(url: str) -> tuple[str, str]:
    """A fresh SQLite database with the app's tables; (path, DATABASE_URL)."""
    handle, path = tempfile.mkstemp(suffix=".sqlite3")
    os.close(handle)
    database_url = f"sqlite:///{path}"
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "-v", "0"],
        env=env_for(url, DATABASE_URL=database_url),
        cwd=ROOT,
        check=True,
        timeout=180,
        capture_output=True,
    )
    return path, database_url


def measure(system, url: str, client: redis.Redis, n: int, window: float):
    client.flushdb()
    running = system.launch(url, n, system.default_mode)
    try:
        deadline = time.monotonic() + 30 + n
        while system.registered(client) < n:
            if not running.alive():
                raise BenchError(f"{system.name} exited during start-up")
            if time.monotonic() > deadline:
                raise BenchError(f"{n} {system.name} workers did not register")
            time.sleep(0.05)
        return idle_rates(client, window)
    finally:
        running.stop()


# -- as figures of bench/run.py ------------------------------------------------------------


def idle_pool(bench: Bench) -> None:
    """Idle commands per second for the whole pool (ours with its scheduler), N = 16, 64."""
    window = bench.options.idle_window
    path, database_url = migrated_database(bench.url)
    try:
        for name in ("ours", "rq", "celery"):
            if name not in bench.options.systems:
                continue
            system = OursWithScheduler(database_url) if name == "ours" else SYSTEMS[name]
            reason = system.skip_reason()
            if reason:
                bench.skip(name, reason)
                continue
            for n in IDLE_POOL_N:
                log(f"idle Redis commands, whole pool, {name}, n={n}, {window:.0f} s")
                try:
                    total, kinds = measure(system, bench.url, bench.client, n, window)
                except BenchError as error:
                    bench.fail("idle Redis commands, whole pool", name, n, error)
                    continue
                top = dict(sorted(kinds.items(), key=lambda item: -item[1])[:6])
                bench.record(
                    "idle Redis commands, whole pool",
                    name,
                    n,
                    "per s",
                    total,
                    kinds={kind: round(rate, 3) for kind, rate in top.items()},
                )
    finally:
        os.unlink(path)


def signal_response(bench: Bench) -> None:
    """Ours: ``USR2`` to an idle worker until its title says ``Paused`` (and ``CONT`` until
    it waits again). Every system: the stop signal to an idle pool of 4 until it exited."""
    samples = max(bench.options.stamps, 5)
    for system in bench.systems(("ours", "rq", "celery")):
        log(f"signal response, {system.name}, {samples} pauses, 3 stops of 4 idle workers")
        try:
            if system.name == "ours":
                pauses = _pause_latencies(bench, system, samples)
                for fraction, label in ((0.5, "p50"), (0.95, "p95")):
                    bench.record(
                        f"idle worker answers USR2 {label}",
                        "ours",
                        1,
                        "ms",
                        percentile(pauses, fraction) * 1000,
                        samples=len(pauses),
                    )
            stops = [_stop_latency(bench, system) for _ in range(3)]
        except BenchError as error:
            bench.fail("signal response", system.name, 4, error)
            continue
        bench.record("idle pool stop", system.name, 4, "ms", median(stops) * 1000, runs=3)


def _pause_latencies(bench: Bench, system, samples: int) -> list[float]:
    running, _ = _started(bench, system, 1, system.default_mode, INTERVAL="600")
    try:
        time.sleep(1.0)
        [worker] = running.worker_pids()
        latencies = []
        for _ in range(samples):
            for signum, title in ((signal.SIGUSR2, "Paused"), (signal.SIGCONT, "Waiting for")):
                sent = time.monotonic()
                os.kill(worker, signum)
                at = wait_for(lambda t=title: t in _title(worker), 10, title, 0.0005)
                if signum == signal.SIGUSR2:
                    latencies.append(at - sent)
            time.sleep(0.05)
        return latencies
    finally:
        running.stop()


def _stop_latency(bench: Bench, system) -> float:
    running, _ = _started(bench, system, 4, system.default_mode)
    try:
        time.sleep(2.0)
        [process] = running.processes
        sent = time.monotonic()
        os.kill(process.pid, system.stop_signal)
        process.wait(30)
        return time.monotonic() - sent
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{system.name} did not stop within 30 s") from error
    finally:
        running.stop()


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--systems", nargs="+", default=["ours", "rq", "celery"])
    options = parser.parse_args(argv)
    server = start_redis()
    url = server.url
    client = redis.Redis.from_url(url)
    path, database_url = migrated_database(url)
    try:
        for name in options.systems:
            system = OursWithScheduler(database_url) if name == "ours" else SYSTEMS[name]
            reason = system.skip_reason()
            if reason:
                log(f"{name}: skipped ({reason})")
                continue
            for n in options.n:
                try:
                    total, kinds = measure(system, url, client, n, options.window)
                except BenchError as error:
                    log(f"{name} n={n}: failed: {error}")
                    continue
                top = sorted(kinds.items(), key=lambda item: -item[1])[:8]
                shown = ", ".join(f"{kind} {rate:.2f}" for kind, rate in top)
                log(f"{name} n={n}: {total:.2f} commands/s idle ({shown})")
    finally:
        cleanup()
        os.unlink(path)
        server.stop()


if __name__ == "__main__":
    main()
