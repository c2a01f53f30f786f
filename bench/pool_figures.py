"""Figures 4 to 8: enqueue throughput, respawn and reconfiguration latency, the idle
manager's CPU, and pick-up latency."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time

from bench.common import (
    PYTHON,
    ROOT,
    BenchError,
    children,
    cpu_seconds,
    env_for,
    is_generation,
    percentile,
    tree,
    wait_for,
)
from bench.figures import Bench, _started, log
from bench.stamp import LATENCY_KEY
from bench.systems import Ours, System


def enqueue(bench: Bench) -> None:
    jobs = bench.options.enqueue_jobs
    for rep in range(bench.options.repetitions):
        log(f"enqueue, one client, {jobs} jobs, run {rep + 1}")
        for system in bench.systems(("ours", "rq", "celery")):
            bench.fresh()
            try:
                done = subprocess.run(
                    [PYTHON, "-m", "bench.clients", "enqueue", system.name, str(jobs)],
                    env=env_for(bench.url),
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=True,
                )
                bench.sample(
                    "enqueue, one client",
                    system.name,
                    1,
                    "jobs/s",
                    float(done.stdout.strip().splitlines()[-1]),
                )
            except (subprocess.SubprocessError, ValueError, IndexError) as error:
                bench.fail("enqueue, one client", system.name, 1, error)
    bench.flush_samples()


def respawn(bench: Bench) -> None:
    n, kills = bench.options.respawn_n, bench.options.kills
    for system in bench.systems(("ours", "rq", "celery")):
        log(f"respawn after SIGKILL, {system.name}, n={n}, {kills} kills")
        try:
            latencies = _kill_and_wait(bench, system, n, kills)
        except BenchError as error:
            bench.fail("respawn", system.name, n, error)
            continue
        bench.record(
            "respawn p50",
            system.name,
            n,
            "ms",
            percentile(latencies, 0.5) * 1000,
            kills=len(latencies),
        )
        bench.record(
            "respawn p95",
            system.name,
            n,
            "ms",
            percentile(latencies, 0.95) * 1000,
            kills=len(latencies),
        )


def _kill_and_wait(bench: Bench, system: System, n: int, kills: int) -> list[float]:
    running, _ = _started(bench, system, n, system.default_mode)
    latencies: list[float] = []
    try:
        born = {pid: time.monotonic() for pid in system.registered_pids(bench.client)}
        deadline = time.monotonic() + kills * 3 + bench.options.healthy_age * (kills / n + 2)
        while len(latencies) < kills:
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(latencies)} of {kills} kills in time")
            now = time.monotonic()
            live = set(children(running.roots[0]))
            age = bench.options.healthy_age
            healthy = [p for p, at in born.items() if p in live and now - at >= age]
            if not healthy:
                time.sleep(0.1)
                continue
            victim = healthy[0]
            before = system.registered_pids(bench.client)
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            del born[victim]

            old = before | {victim}
            at = wait_for(
                lambda old=old: bool(system.registered_pids(bench.client) - old),
                30,
                f"{system.name} to replace a worker",
            )
            latencies.append(at - killed)
            for pid in system.registered_pids(bench.client) - old:
                born[pid] = at
    finally:
        running.stop()
    return latencies


def reconfiguration(bench: Bench) -> None:
    """A WorkerCount change (a row updated in the database) until the pool runs the count."""
    ours = Ours()
    changes, low, high = bench.options.changes, 2, 4
    log(f"reconfiguration, ours, {changes} changes between {low} and {high} workers")
    handle, database = tempfile.mkstemp(suffix=".sqlite3")
    os.close(handle)
    env = {"DATABASE_URL": f"sqlite:///{database}"}
    try:
        for command in (
            ["migrate", "-v", "0"],
            [
                "shell",
                "-c",
                "from resque_pool.models import WorkerCount as W; "
                f"W.objects.create(queues='bench', count={low}, pool='bench')",
            ],
        ):
            subprocess.run(
                [PYTHON, "manage.py", *command],
                env=env_for(bench.url, **env),
                cwd=ROOT,
                check=True,
                timeout=180,
                capture_output=True,
            )
        running, _ = _started(bench, ours, low, ours.default_mode, DATABASE_COUNTS="1", **env)
        latencies = []
        try:
            with sqlite3.connect(database) as connection:
                for change in range(changes):
                    target = high if change % 2 == 0 else low
                    connection.execute("UPDATE resque_pool_workercount SET count = ?", (target,))
                    connection.commit()
                    changed = time.monotonic()
                    at = wait_for(
                        lambda target=target: (
                            ours.registered(bench.client) == target
                            and len(children(running.roots[0])) == target
                        ),
                        30,
                        f"the pool to run {target} workers",
                    )
                    latencies.append(at - changed)
                    time.sleep(random.uniform(0.1, 0.5))
        finally:
            running.stop()
        for fraction, label in ((0.5, "p50"), (0.95, "p95")):
            bench.record(
                f"reconfiguration {label}",
                "ours",
                None,
                "s",
                percentile(latencies, fraction),
                changes=len(latencies),
            )
    except (BenchError, subprocess.SubprocessError, sqlite3.Error) as error:
        bench.fail("reconfiguration", "ours", None, error)
    finally:
        os.unlink(database)


def idle_cpu(bench: Bench) -> None:
    n, window = bench.options.idle_n, bench.options.idle_window
    for system in bench.systems(("ours", "rq", "celery")):
        log(f"idle manager CPU, {system.name}, n={n}, {window:.0f} s")
        try:
            running, _ = _started(bench, system, n, system.default_mode)
        except BenchError as error:
            bench.fail("idle manager CPU", system.name, n, error)
            continue
        try:
            time.sleep(2.0)
            manager = running.roots[0]
            before, commands = _manager_cpu(manager), _commands(bench)
            time.sleep(window)
            used, commands = _manager_cpu(manager) - before, _commands(bench) - commands
        finally:
            running.stop()
        bench.record("idle manager CPU", system.name, n, "CPU s/min", used / window * 60)
        bench.record(
            "idle Redis commands per worker", system.name, n, "per s", commands / n / window
        )


def _manager_cpu(root: int) -> float:
    """CPU seconds of a manager: ours is the master and its generation (the manager of the
    loaded release, resque_pool/pool/master.py); a peer's is its root process."""
    return sum(cpu_seconds(pid) for pid in tree(root) if pid == root or is_generation(pid))


def _commands(bench: Bench) -> int:
    """Commands Redis ran so far (INFO commandstats: commands inside scripts count too)."""
    stats = bench.client.info("commandstats")
    return sum(entry["calls"] for name, entry in stats.items() if name != "cmdstat_info")


def pickup(bench: Bench) -> None:
    n, stamps = bench.options.pickup_n, bench.options.stamps
    for system in bench.systems(("ours", "rq", "celery")):
        log(f"pick-up latency, {system.name}, n={n}, {stamps} jobs idle and under load")
        try:
            interval = bench.options.pickup_interval
            env = {"INTERVAL": interval} if interval else {}
            running, _ = _started(bench, system, n, system.default_mode, **env)
        except BenchError as error:
            bench.fail("pick-up", system.name, n, error)
            continue
        try:
            time.sleep(1.0)
            idle = _idle_latencies(bench, system, stamps)
            loaded = _loaded_latencies(bench, system, stamps)
        except BenchError as error:
            bench.fail("pick-up", system.name, n, error)
            continue
        finally:
            running.stop()
        for label, values in (("idle", idle), ("under load", loaded)):
            for fraction, name in ((0.5, "p50"), (0.95, "p95")):
                bench.record(
                    f"pick-up {label} {name}",
                    system.name,
                    n,
                    "ms",
                    percentile(values, fraction) * 1000,
                    jobs=len(values),
                )


def _latencies(bench: Bench) -> list[float]:
    return [float(value) for value in bench.client.lrange(LATENCY_KEY, 0, -1)]


def _idle_latencies(bench: Bench, system: System, stamps: int) -> list[float]:
    bench.client.delete(LATENCY_KEY)
    for count in range(1, stamps + 1):
        system.push_stamp(bench.client)
        wait_for(
            lambda count=count: bench.client.llen(LATENCY_KEY) >= count,
            30,
            f"{system.name} to pick up a job",
            0.002,
        )
        time.sleep(random.uniform(0.05, 0.3))
    return _latencies(bench)


def _loaded_latencies(bench: Bench, system: System, stamps: int) -> list[float]:
    """Stamps among a steady stream of no-op jobs (``--load`` per second)."""
    bench.client.delete(LATENCY_KEY)
    rate, stop = bench.options.load, threading.Event()

    def feed() -> None:
        period = 1.0 / rate
        next_at = time.monotonic()
        while not stop.is_set():
            system.push_noop(bench.client)
            next_at += period
            time.sleep(max(next_at - time.monotonic(), 0))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        time.sleep(1.0)
        for _ in range(stamps):
            system.push_stamp(bench.client)
            time.sleep(random.uniform(0.1, 0.3))
        wait_for(
            lambda: bench.client.llen(LATENCY_KEY) >= stamps,
            60,
            f"{system.name} to run the stamps under load",
            0.01,
        )
    finally:
        stop.set()
        feeder.join(5)
    return _latencies(bench)
