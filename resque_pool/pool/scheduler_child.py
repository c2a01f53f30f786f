"""The scheduler as a child of the pool manager: forked, supervised and restarted like a
worker (with the same backoff when it keeps dying), never a thread of the forking manager.

The manager holds one ``SchedulerChild`` and calls ``maintain()`` when it reconciles,
``reaped()`` for every child it reaps and ``stop()`` when it finishes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable

from resque_pool.pool import spawn
from resque_pool.pool.backoff import Backoff

# Imported in the manager although only the child runs it: an import after the fork would
# copy the import machinery's pages into the child instead of sharing them.
from resque_pool.scheduler.process import Scheduler

logger = logging.getLogger(__name__)


class SchedulerChild:
    def __init__(
        self, enabled: bool, manager_pid: int, appname: str, single_process_group: bool
    ) -> None:
        self.enabled = enabled
        self.manager_pid = manager_pid
        self.appname = appname
        self.single_process_group = single_process_group
        self.pid: int | None = None
        self.started = 0.0
        self.stopping = False
        self.backoff = Backoff()

    def maintain(self, reset_signals: Iterable[int], close_fds: Iterable[int]) -> None:
        """Start the scheduler when it should run and does not (after its backoff)."""
        if not self.enabled or self.stopping:
            return
        now = time.monotonic()
        if self.pid is not None:
            self.backoff.survived(self.started, now)
            return
        if self.backoff.wait(now) > 0:
            return
        spawn.prepare_to_fork()
        try:
            self.pid = fork_scheduler(
                self.appname, self.manager_pid, self.single_process_group, reset_signals, close_fds
            )
        except OSError as error:
            logger.error("could not fork the scheduler: %s", error)
            return
        self.started = now
        logger.info("spawned scheduler %d", self.pid)

    def reaped(self, pid: int, code: int) -> bool:
        """True when ``pid`` was the scheduler (then it is restarted by the next maintain)."""
        if pid != self.pid:
            return False
        self.pid = None
        if not self.stopping:
            lifetime = time.monotonic() - self.started
            logger.warning("scheduler %d exited after %.1fs (status %s)", pid, lifetime, code)
            self.backoff.died(lifetime, time.monotonic())
        else:
            logger.info("Reaped scheduler %d (status: %s)", pid, code)
        return True

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the scheduler to finish its step and exit; it is not restarted."""
        self.stopping = True
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    @property
    def pids(self) -> list[int]:
        return [self.pid] if self.pid is not None else []


def fork_scheduler(
    appname: str,
    manager_pid: int,
    single_process_group: bool,
    reset_signals: Iterable[int],
    close_fds: Iterable[int],
) -> int:
    """Fork; in the child, run the scheduler until it is stopped and ``_exit``."""

    def run() -> int:
        Scheduler(appname=appname, manager_pid=manager_pid).run()
        return 0

    # Started as a worker is: default signal dispositions, none of the manager's
    # descriptors or Redis sockets, its own process group.
    return spawn.fork_child(
        run,
        single_process_group,
        reset_signals,
        close_fds,
        failure="the scheduler failed",
        log=logger,
    )
