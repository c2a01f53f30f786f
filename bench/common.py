"""What every benchmark shares: a private Redis, process launching with guaranteed clean-up,
bounded waits, memory of a process tree, and summary statistics."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support import redis_server

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NAMESPACE = "bench"
QUEUE = "bench"

_started: list[subprocess.Popen] = []


class BenchError(Exception):
    """A measurement that could not finish (a timeout, a process that died)."""


def start_redis() -> redis_server.TestRedis:
    """A redis-server of our own on a free loopback port (never the shared 6379)."""
    return redis_server.start()


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RESQUE_REDIS_URL=url,
        BENCH_REDIS_URL=url,
        RESQUE_NAMESPACE=NAMESPACE,
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def launch(cmd: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    """Start ``cmd`` in its own session (so its whole tree can be signalled) and remember it
    for :func:`cleanup`."""
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    process = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True, **kwargs)
    _started.append(process)
    return process


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal the process group, wait a bounded time, then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    # Workers of a pool lead process groups of their own: kill the group, then stragglers.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    if process in _started:
        _started.remove(process)


def stop_all(
    processes: list[subprocess.Popen], sig: int = signal.SIGTERM, timeout: float = 15.0
) -> None:
    """Signal every tree, give them ``timeout`` together, then SIGKILL every process left in
    them (a pool's workers lead process groups of their own)."""
    pids = {pid for process in processes for pid in tree(process.pid)}
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(deadline - time.monotonic(), 0.01))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for process in processes:
        stop(process, signal.SIGKILL, timeout=5)


def cleanup() -> None:
    """Kill every process tree this run started and has not stopped yet."""
    for process in list(_started):
        for pid in tree(process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        stop(process, signal.SIGKILL, timeout=5)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.005
) -> float:
    """Poll ``predicate`` until true; the monotonic time it became true. Bounded."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (bounded by what /proc shows now)."""
    found, todo = [], [pid]
    while todo and len(found) < 10_000:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(child) for child in (task / "children").read_text().split())
    return found


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` but a pool's generations (the manager of one release,
    between the master and its workers: resque_pool/pool/master.py), so that a pool's
    are its workers and their job children, as they were under a lone manager."""
    return [child for child in tree(pid)[1:] if not is_generation(child)]


def is_generation(pid: int) -> bool:
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return title.startswith("resque-pool-generation[") or (
        "resque_pool.management.generation" in title
    )


def rollup_kib(pid: int) -> tuple[int, int]:
    """(PSS, USS) of one process in KiB, from /proc/<pid>/smaps_rollup."""
    pss = uss = 0
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            field, _, rest = line.partition(":")
            if field == "Pss":
                pss = int(rest.split()[0])
            elif field in ("Private_Clean", "Private_Dirty"):
                uss += int(rest.split()[0])
    return pss, uss


def tree_memory_mib(pids: list[int]) -> tuple[float, float]:
    """Summed PSS and USS (MiB) of the trees rooted at ``pids``."""
    pss = uss = 0
    for root in pids:
        for pid in tree(root):
            with contextlib.suppress(OSError):
                one_pss, one_uss = rollup_kib(pid)
                pss += one_pss
                uss += one_uss
    return pss / 1024, uss / 1024


_STAT_FIELDS = ("minflt", "cminflt", "majflt", "cmajflt", "utime", "stime", "cutime", "cstime")


def proc_stat(pid: int) -> dict[str, int]:
    """Page faults and CPU ticks of one process and of its reaped children, from
    ``/proc/<pid>/stat`` (fields 10 to 17; the command name may hold spaces and ")")."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {name: int(value) for name, value in zip(_STAT_FIELDS, fields[7:15], strict=True)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (not its children)."""
    stat = proc_stat(pid)
    return (stat["utime"] + stat["stime"]) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]
