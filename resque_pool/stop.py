"""Stop a pool after its current jobs and wait until it is gone: resqued's
``quit-and-wait``, for a Kubernetes ``preStop`` hook or a deploy script.

``python -m resque_pool.stop [--pidfile FILE | --appname NAME] [--grace-period SECONDS]``
(``manage.py resque_pool_stop`` takes the same options) sends QUIT to the pool's manager,
as resque-pool's QUIT: every worker finishes the job it is running, takes no other and
exits. It then waits until the manager and every process it had started (workers, their
job children, the scheduler) are gone, or the grace period is over. A process is followed
by its pid and its start time, so a pid the kernel hands to another process meanwhile is
not waited for.

Like ``resque_pool.health``, it imports nothing of Django: a hook pays a Python start.

Exit status: 0 stopped (or not running any more), 1 the grace period ran out with
processes still running (listed), 2 no such pool or a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time

from resque_pool.health import (
    NoPool,
    PoolHealth,
    add_pool_arguments,
    default_appname,
    find_pools,
    one_line_errors,
    seconds,
)
from resque_pool.unix.process import descendants, identity

STOPPED, STILL_RUNNING, NO_POOL = 0, 1, 2
# resqued's default. A preStop hook should leave the platform a few seconds of its own
# grace period (Kubernetes sends TERM when the hook returns, KILL when the period ends).
DEFAULT_GRACE_PERIOD = 30.0
POLL_SECONDS = 0.1

Process = tuple[int, int]  # (pid, start time): one process, even after its pid is reused


class Tree:
    """A manager and the processes below it, followed until every one has exited."""

    def __init__(self, pool: PoolHealth) -> None:
        self.pool = pool
        self.processes: set[Process] = set()
        self.refresh()

    def refresh(self) -> None:
        """Forget the processes that exited; add those started below the ones still here
        (a worker's job child, a generation booting while the stop arrived)."""
        self.processes = {proc for proc in self.processes if identity(proc[0]) == proc}
        roots = [self.pool.pid, *(pid for pid, _started in self.processes)]
        for pid in {root for root in roots if identity(root) is not None}:
            for below in [pid, *descendants(pid)]:
                proc = identity(below)
                if proc is not None:
                    self.processes.add(proc)

    def pids(self) -> list[int]:
        return sorted(pid for pid, _started in self.processes)


def quit_and_wait(pools: list[PoolHealth], grace_period: float) -> tuple[int, str]:
    """QUIT to each running manager, then wait for every tree; the exit status and line."""
    started = time.monotonic()
    trees = [Tree(pool) for pool in pools if pool.age != float("inf")]
    if not trees:  # a manager killed outright leaves its pidfile: nothing to stop
        return STOPPED, f"not running: {', '.join(pool.name for pool in pools)}"
    for tree in trees:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile: nothing to stop
            os.kill(tree.pool.pid, signal.SIGQUIT)
    deadline = started + grace_period
    while True:
        for tree in trees:
            tree.refresh()
        left = [tree for tree in trees if tree.processes]
        if not left:
            names = ", ".join(tree.pool.name for tree in trees)
            return STOPPED, f"stopped: {names} in {time.monotonic() - started:.1f}s"
        if time.monotonic() >= deadline:
            still = "; ".join(f"{tree.pool.name}: pids {tree.pids()}" for tree in left)
            return STILL_RUNNING, (
                f"still running after the grace period of {grace_period:g}s: {still}"
            )
        time.sleep(POLL_SECONDS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pool_arguments(parser)
    parser.add_argument(
        "--grace-period",
        type=seconds,
        default=DEFAULT_GRACE_PERIOD,
        metavar="SECONDS",
        help=f"how long to wait for the pool to stop (default {DEFAULT_GRACE_PERIOD:g})",
    )


def run(pidfile: str | None, appname: str | None, grace_period: float) -> tuple[int, str]:
    try:
        pools = find_pools(pidfile, appname or default_appname())
    except NoPool as error:
        return NO_POOL, f"no pool: {error}"
    return quit_and_wait(pools, grace_period)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m resque_pool.stop",
        description="Stop a pool after its current jobs and wait for it. Exit 0 stopped, 1 "
        "still running after the grace period, 2 no such pool.",
    )
    add_arguments(one_line_errors(parser))
    options = parser.parse_args(argv)
    code, line = run(options.pidfile, options.appname, options.grace_period)
    print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
