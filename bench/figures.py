"""The figures of the benchmark, one function each. Every function gets a :class:`Bench`
(the private Redis and the options) and adds result rows through ``bench.record``; a
system that fails one measurement is recorded as failed and the run goes on."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import redis

from bench import protocol
from bench.common import (
    PYTHON,
    BenchError,
    env_for,
    launch,
    median,
    stop_all,
    tree_memory_mib,
    wait_for,
)
from bench.systems import FORK, INPROC, SYSTEMS, Ours, System, _payload

FLOOR_FORKS = 100
HEALTHY_AGE = 10.5  # the pool's backoff calls a worker healthy after 10 s


@dataclass
class Bench:
    url: str
    client: redis.Redis
    options: object
    rows: list[dict] = field(default_factory=list)
    samples: dict[tuple, list[float]] = field(default_factory=dict)
    template: list | None = None

    def systems(self, names: tuple[str, ...]) -> list[System]:
        chosen = []
        for name in names:
            if name not in self.options.systems:
                continue
            system = SYSTEMS[name]
            reason = system.skip_reason()
            if reason:
                self.skip(name, reason)
            else:
                chosen.append(system)
        return chosen

    def skip(self, system: str, reason: str) -> None:
        if not any(row.get("skipped") and row["system"] == system for row in self.rows):
            self.rows.append(
                {
                    "name": "*",
                    "system": system,
                    "n": None,
                    "value": None,
                    "unit": "",
                    "skipped": reason,
                }
            )
            log(f"  {system}: skipped ({reason})")

    def sample(self, name: str, system: str, n: int | None, unit: str, value: float) -> None:
        self.samples.setdefault((name, system, n, unit), []).append(value)

    def fail(self, name: str, system: str, n: int | None, error: Exception) -> None:
        log(f"  {system} n={n}: {name} failed: {error}")
        self.rows.append(
            {"name": name, "system": system, "n": n, "value": None, "unit": "", "error": str(error)}
        )

    def record(
        self, name: str, system: str, n: int | None, unit: str, value: float, **extra
    ) -> None:
        self.rows.append(
            {
                "name": name,
                "system": system,
                "n": n,
                "value": round(value, 4),
                "unit": unit,
                **extra,
            }
        )

    def flush_samples(self) -> None:
        """Turn repeated samples into median rows."""
        for (name, system, n, unit), values in self.samples.items():
            # The spread (max - min) is the noise a difference of two medians is judged by.
            self.record(
                name,
                system,
                n,
                unit,
                median(values),
                runs=len(values),
                spread=round(max(values) - min(values), 4),
            )
        self.samples.clear()

    def record_difference(
        self, name: str, system: str, n: int | None, unit: str, value: float, noise: float | None
    ) -> None:
        """A difference of medians (a cost): within its noise (the runs' spreads, scaled
        as the value is), or negative with no noise measured (one run), it is no cost that
        can be read, and is marked so rather than printed as a negative cost."""
        within = abs(value) <= (noise or 0) or (value < 0 and not noise)
        extra: dict = {"noise": round(noise, 4)} if noise else {}
        if within:
            extra["within_noise"] = True
        self.record(name, system, n, unit, value, **extra)

    def fresh(self) -> None:
        self.client.flushdb()


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", flush=True)


def rotated(systems: list[System], rep: int) -> list[System]:
    """The systems in a different order each repetition: whoever runs right after another
    system's shutdown, or first after a floor, does not always pay for it."""
    shift = rep % len(systems) if systems else 0
    return systems[shift:] + systems[:shift]


def _started(bench: Bench, system: System, n: int, mode: str, **env: str):
    """Launch and wait until N workers are registered; (running, seconds to start)."""
    bench.fresh()
    started = time.monotonic()
    running = system.launch(bench.url, n, mode, **env)
    try:
        ready = wait_for(
            lambda: running.alive() and system.registered(bench.client) >= n or _died(running),
            30 + n,
            f"{n} {system.name} workers to register",
        )
        if not running.alive():
            raise BenchError(f"{system.name} exited during start-up")
    except BaseException:
        running.stop()
        raise
    return running, ready - started


def _died(running) -> bool:
    return not running.alive()


# 1 and 2: start-up, and memory one second later ------------------------------------------


def startup_and_memory(bench: Bench) -> None:
    systems = bench.systems(("ours", "separate", "rq", "celery"))
    for n in bench.options.n:
        for rep in range(bench.options.repetitions):
            log(f"start-up and memory, n={n}, run {rep + 1}")
            if n == bench.options.n[0]:  # once per repetition: it does not depend on N
                for system in systems:
                    if system.name in _LOADS_DJANGO_ALONE:
                        load = _django_load(bench.url, system.settings)
                        bench.sample("django load (django.setup())", system.name, None, "s", load)
            for system in rotated(systems, rep):
                try:
                    running, seconds = _started(bench, system, n, system.default_mode)
                except BenchError as error:
                    bench.fail("start-up", system.name, n, error)
                    continue
                try:
                    time.sleep(1.0)
                    pss, uss = tree_memory_mib(running.roots)
                finally:
                    running.stop()
                bench.sample("start-up", system.name, n, "s", seconds)
                bench.sample("memory PSS", system.name, n, "MiB", pss)
                bench.sample("memory USS", system.name, n, "MiB", uss)
    bench.flush_samples()
    derive_startup_costs(bench)


def derive_startup_costs(bench: Bench) -> None:
    """The pool's own start-up cost from the start-up and load rows: per worker beyond the
    project's load, and per extra worker (differences of medians, judged by their noise)."""
    loads = {
        row["system"]: row["value"]
        for row in bench.rows
        if row["name"].startswith("django load") and row["value"]
    }
    spreads = {
        row["system"]: row.get("spread", 0.0)
        for row in bench.rows
        if row["name"].startswith("django load") and row["value"]
    }
    startups = [row for row in bench.rows if row["name"] == "start-up" and row["value"]]
    for row in startups:
        load = loads.get(row["system"])
        if load is not None:
            # What the pool itself adds to loading the project it runs, per worker: the
            # difference of two medians, whose noise is the two runs' spreads.
            per_worker = (row["value"] - load) / row["n"] * 1000
            noise = (row.get("spread", 0.0) + spreads.get(row["system"], 0.0)) / row["n"] * 1000
            bench.record_difference(
                "start-up beyond Django, per worker",
                row["system"],
                row["n"],
                "ms",
                per_worker,
                noise,
            )
    # The marginal cost of a worker, free of any baseline: the slope from the smallest N to
    # the largest, per system.
    for system in {row["system"] for row in startups}:
        mine = sorted(
            (row["n"], row["value"], row.get("spread", 0.0))
            for row in startups
            if row["system"] == system
        )
        if len(mine) > 1 and mine[-1][0] > mine[0][0]:
            (low, first, low_spread), (high, last, high_spread) = mine[0], mine[-1]
            slope = (last - first) / (high - low) * 1000
            noise = (low_spread + high_spread) / (high - low) * 1000
            bench.record_difference("start-up per extra worker", system, high, "ms", slope, noise)


# The systems whose start-up is their project's django.setup() plus the pool's own work
# (Celery loads its app and Django its own way; separate workers load it N times).
_LOADS_DJANGO_ALONE = ("ours", "rq")


def _django_load(url: str, settings: str) -> float:
    """Seconds from launch to a loaded project, with the settings a system runs. The
    process ends with ``os._exit``: the interpreter's teardown (about 0.1 s with Django
    loaded) is no part of any start-up, which ends when the workers are registered."""
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, "-c", "import os, django; django.setup(); os._exit(0)"],
        env=env_for(url, DJANGO_SETTINGS_MODULE=settings),
        cwd=str(os.path.dirname(os.path.dirname(__file__))),
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


# 3: throughput, memory growth, the protocol limit and the fork floor ----------------------


def throughput(bench: Bench) -> None:
    systems = bench.systems(("ours", "separate", "rq", "celery"))
    options = bench.options
    for n in options.throughput_n:
        for mode, jobs in ((INPROC, options.jobs), (FORK, options.fork_jobs)):
            label = "throughput, in-process" if mode == INPROC else "throughput, fork per job"
            for rep in range(options.repetitions):
                log(f"{label}, n={n}, {jobs} jobs, run {rep + 1}")
                for system in rotated(systems, rep):
                    try:
                        _drain(bench, system, n, mode, jobs, label)
                    except BenchError as error:
                        bench.fail(label, system.name, n, error)
                if mode == INPROC:
                    _floor(bench, n, label, "protocol limit", "protocol", jobs)
                else:
                    _floor(bench, n, label, "fork floor", "fork-floor", jobs)
    bench.flush_samples()


def _drain(bench: Bench, system: System, n: int, mode: str, jobs: int, label: str) -> None:
    # Default settings: our idle workers wake on the tokens the release pushes, as they
    # would on enqueue()'s; rq and Celery block on their lists.
    running, _ = _started(bench, system, n, mode)
    try:
        system.stage(bench.client, jobs)
        time.sleep(1.0)
        before = tree_memory_mib(running.roots)
        started = time.monotonic()
        system.release(bench.client)
        deadline = started + bench.options.drain_timeout
        while system.done(bench.client) < jobs and time.monotonic() < deadline:
            if not running.alive():
                raise BenchError(f"{system.name} died while draining")
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        finished = system.done(bench.client)
        if finished < jobs:
            log(f"  {system.name}: {finished} of {jobs} jobs within {elapsed:.0f} s")
        bench.sample(label, system.name, n, "jobs/s", finished / elapsed)
        if mode == INPROC:
            time.sleep(1.0)
            after = tree_memory_mib(running.roots)
            growth = (after[0] - before[0]) / before[0] * 100
            bench.sample(f"memory growth over {jobs} jobs (PSS)", system.name, n, "%", growth)
    finally:
        running.stop()


def _template(bench: Bench) -> list:
    """Our worker's commands for one job, captured once per run."""
    if bench.template is None:
        bench.template = protocol.capture(
            bench.url, bench.client, Ours.queue_key, lambda k: _payload("BenchNoop", [k])
        )
        bench.rows.append(
            {
                "name": "commands per job (ours, MONITOR)",
                "system": "ours",
                "n": None,
                "value": sum(len(trip) for trip in bench.template),
                "unit": "commands",
                "round_trips": len(bench.template),
                "commands": [
                    [arg.decode(errors="replace") for arg in args]
                    for trip in bench.template
                    for args in trip
                ],
            }
        )
    return bench.template


def _floor(bench: Bench, n: int, figure: str, label: str, command: str, jobs: int) -> None:
    """N bare processes doing only what a job costs in Redis, or only the fork."""
    bench.fresh()
    try:
        if command == "protocol":
            template = _template(bench)
            bench.fresh()
            Ours().stage(bench.client, jobs)
            bench.client.rename(Ours.queue_key + "-staging", Ours.queue_key)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
                json.dump(
                    [
                        [[a.decode("utf-8", "surrogateescape") for a in args] for args in trip]
                        for trip in template
                    ],
                    out,
                )
            args = [out.name, Ours.queue_key]
        else:
            # At least 100 forks each: a floor taken over a handful is mostly start-up noise.
            args = [str(max(jobs // n, FLOOR_FORKS))]
        processes = [
            launch(
                [PYTHON, "-m", "bench.clients", command, *args],
                env_for(bench.url),
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        try:
            wait_for(
                lambda: int(bench.client.get("bench-ready") or 0) >= n,
                60,
                f"{n} {command} processes",
                0.02,
            )
            bench.client.rpush("bench-go", *["go"] * n)
            total, elapsed = 0, 0.0
            for process in processes:
                said, _ = process.communicate(timeout=bench.options.drain_timeout)
                count, seconds = said.split()
                total, elapsed = total + int(count), max(elapsed, float(seconds))
        finally:
            stop_all(processes)
        bench.sample(figure, label, n, "jobs/s", total / elapsed)
    except (BenchError, subprocess.TimeoutExpired, ValueError) as error:
        bench.fail(figure, label, n, error)
    finally:
        if command == "protocol" and "out" in locals():
            os.unlink(out.name)
