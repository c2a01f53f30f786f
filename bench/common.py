"""Helpers shared by the benchmarks: a private Redis, subprocess environments, PSS."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from tests import redis_server

ROOT = Path(__file__).resolve().parent.parent

PYTHON = sys.executable


def start_redis() -> redis_server.TestRedis:
    return redis_server.start()


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RESQUE_REDIS_URL=url,
        RESQUE_NAMESPACE="bench",
        DJANGO_SETTINGS_MODULE="testproject.settings",
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def pss_kib(pid: int) -> int:
    """Proportional set size of one process (shared pages split among their users)."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found.extend(tree(int(child)))
    return found


def tree_pss_kib(pid: int) -> int:
    total = 0
    for member in tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += pss_kib(member)
    return total
