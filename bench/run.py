"""Run the benchmarks of django-resque-pool against its peers, in one run:

    python bench/run.py                 # every figure, N = 4, 8, 16, medians of 3 runs
    python bench/run.py --quick         # the same figures, smaller, once each: about 4 minutes
    python bench/run.py --figures startup,throughput --n 8 --repetitions 5

Each run starts its own redis-server on a free loopback port, bounds every wait, and kills
every process it started, also on Ctrl-C. Peers (django-rq, Celery) come from the
``bench`` extra; a peer that is not installed is reported as skipped. The table is printed,
the rows go to ``bench/out/results.json`` and the plot to ``bench/out/benchmarks.png`` (an
ignored folder, so a quick run never overwrites the committed results); ``--publish``
writes ``bench/results.json`` and ``docs/img/benchmarks.png``, the figures the docs show.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` and ``tests`` importable
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import common, figures, idle, pool_figures, report  # noqa: E402

FIGURES = {
    "startup": figures.startup_and_memory,  # figures 1 and 2 (memory one second after)
    "throughput": figures.throughput,  # figure 3, memory growth, protocol limit, fork floor
    "enqueue": pool_figures.enqueue,  # figure 4
    "respawn": pool_figures.respawn,  # figure 5
    "reconfiguration": pool_figures.reconfiguration,  # figure 6
    "idle": pool_figures.idle_cpu,  # figure 7
    "pickup": pool_figures.pickup,  # figure 8
    "idle_pool": idle.idle_pool,  # idle commands for the whole pool, N = 16 and 64
    "signals": idle.signal_response,  # USR2 to an idle worker; an idle pool's stop
}
SYSTEMS = ("ours", "separate", "rq", "celery")
# Where a run writes unless told to publish: ignored by git (.gitignore), so a user's quick
# run never overwrites the committed results and plot the docs show.
OUT = ROOT / "bench" / "out"
PUBLISHED = {
    "output": ROOT / "bench" / "results.json",
    "plot": ROOT / "docs" / "img" / "benchmarks.png",
}

FULL = dict(
    n=[4, 8, 16],
    throughput_n=[8],
    repetitions=3,
    jobs=20_000,
    fork_jobs=5_000,
    drain_timeout=180.0,
    enqueue_jobs=20_000,
    respawn_n=8,
    kills=50,
    changes=20,
    idle_n=64,
    idle_window=60.0,
    pickup_n=4,
    stamps=20,
    load=50.0,
)
QUICK = dict(
    n=[4, 8, 16],
    throughput_n=[8],
    repetitions=1,
    jobs=1_000,
    fork_jobs=200,
    drain_timeout=10.0,
    enqueue_jobs=2_000,
    respawn_n=8,
    kills=8,
    changes=6,
    idle_n=64,
    idle_window=5.0,
    pickup_n=4,
    stamps=5,
    load=50.0,
)


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _names(choices):
    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}"
            )
        return names

    return parse


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--quick",
        action="store_true",
        help="small sizes, one repetition (unless --repetitions): about 4 minutes",
    )
    add(
        "--figures",
        type=_names(FIGURES),
        default=list(FIGURES),
        help=f"comma-separated, from {','.join(FIGURES)} (default: all)",
    )
    add(
        "--systems",
        type=_names(SYSTEMS),
        default=list(SYSTEMS),
        help="comma-separated, from ours,separate,rq,celery (default: all)",
    )
    add("--n", type=_numbers, help="worker counts for start-up and memory (4,8,16)")
    add("--throughput-n", type=_numbers, help="worker counts for throughput (8)")
    add("--repetitions", type=int, help="runs per figure; medians are reported (3)")
    add("--jobs", type=int, help="no-op jobs drained in-process (20000)")
    add("--fork-jobs", type=int, help="no-op jobs drained with a fork per job (5000)")
    add(
        "--drain-timeout",
        type=float,
        help="seconds a drain may take; the rate is then "
        "computed over the jobs that finished (180)",
    )
    add("--enqueue-jobs", type=int, help="jobs pushed by the enqueue client (20000)")
    add("--respawn-n", type=int, help="workers in the respawn pool (8)")
    add("--kills", type=int, help="SIGKILLs of healthy workers (50)")
    add("--changes", type=int, help="WorkerCount changes (20)")
    add("--idle-n", type=int, help="workers for the idle manager's CPU (64)")
    add("--idle-window", type=float, help="seconds the idle CPU is measured over (60)")
    add("--pickup-n", type=int, help="workers for the pick-up latency (4)")
    add("--stamps", type=int, help="latency jobs, idle and under load each (20)")
    add("--load", type=float, help="no-op jobs/s fed during the loaded pick-up (50)")
    add(
        "--healthy-age",
        type=float,
        default=figures.HEALTHY_AGE,
        help="seconds a worker lives before it is killed for the respawn figure (10.5: "
        "past the backoff's 10 s)",
    )
    add(
        "--pickup-interval",
        help="INTERVAL for our workers in the pick-up figure (default: unset, Resque's 5 s)",
    )
    add("--output", type=Path, help="the rows (default bench/out/results.json)")
    add("--plot", type=Path, help="the plot (default bench/out/benchmarks.png)")
    add("--no-plot", action="store_true")
    add(
        "--publish",
        action="store_true",
        help="write the committed results and plot (bench/results.json, "
        "docs/img/benchmarks.png) instead of the ignored bench/out/",
    )
    options = parser.parse_args(argv)
    if options.output is None:
        options.output = PUBLISHED["output"] if options.publish else OUT / "results.json"
    if options.plot is None:
        options.plot = PUBLISHED["plot"] if options.publish else OUT / "benchmarks.png"
    for name, value in (QUICK if options.quick else FULL).items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    if options.repetitions < 1 or min(options.n + options.throughput_n) < 1:
        parser.error("--repetitions and every N must be at least 1")
    return options


def machine(url: str) -> dict:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    server = redis.Redis.from_url(url).info("server")
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "redis": server.get("redis_version"),
        "loadavg": os.getloadavg()[0],
        "redis-py": version("redis"),
        **{name: version(name) for name in ("django", "rq", "django-rq", "celery")},
    }


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    server = common.start_redis()
    os.environ["BENCH_REDIS_URL"] = server.url  # Celery's app reads its broker from here
    client = redis.Redis.from_url(server.url)
    bench = figures.Bench(server.url, client, options)
    info = machine(server.url)
    started = time.monotonic()
    try:
        figures.log(
            f"redis {info['redis']} at {server.url}; {info['nproc']} CPUs, "
            f"load {info['loadavg']:.1f}"
        )
        for name in options.figures:
            FIGURES[name](bench)
    except KeyboardInterrupt:
        figures.log("interrupted: stopping every process this run started")
        return 130
    finally:
        common.cleanup()
        client.close()
        server.stop()
    info["loadavg_end"] = os.getloadavg()[0]
    info["seconds"] = round(time.monotonic() - started)
    report.add_ratios(bench.rows)
    print(report.table(bench.rows))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    report.write_json(bench.rows, options.output, info)
    if not options.no_plot:
        options.plot.parent.mkdir(parents=True, exist_ok=True)
        if not report.plot(bench.rows, options.plot, report.title(info)):
            figures.log("matplotlib is not installed: no plot")
    figures.log(f"{info['seconds']} s; rows in {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
