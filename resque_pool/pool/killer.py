"""``--kill-others`` / ``--hot-swap``: ask the other pools of this app on this host to stop.

resque-pool's Killer greps ``ps`` for every ``resque-pool-master`` on the host, whatever the
app, and sends INT as soon as the new pool has forked. We find the others through the live
state the pools publish (same host, same appname), send QUIT (finish the current jobs, then
exit), and only once every worker of the new pool has registered in Redis, so that the
queues are never left without workers.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from resque_pool.logs import LogOnce
from resque_pool.pool import state as pool_state
from resque_pool.resque.connection import get_redis, key
from resque_pool.unix.process import command_line

if TYPE_CHECKING:
    from resque_pool.pool.processes import WorkerTable

logger = logging.getLogger(__name__)


def workers_registered(worker_ids: Iterable[str]) -> bool:
    """True when every id is a member of ``<ns>:workers``."""
    ids = list(worker_ids)
    if not ids:
        return True
    # SISMEMBER in a pipeline rather than SMISMEMBER, which needs Redis 6.2.
    pipe = get_redis().pipeline(transaction=False)
    for worker_id in ids:
        pipe.sismember(key("workers"), worker_id)
    return all(pipe.execute())


def _is_pool_master(pid: int, appname: str) -> bool:
    """Guard against a recycled pid: the process must still carry the manager's title."""
    text = command_line(pid)
    if text is None:  # no procfs: trust the live state; unreadable: do not signal
        return not os.path.isdir("/proc")
    return f"resque-pool-master[{appname}]" in text


def other_pools(appname: str, host: str, own_pid: int) -> list[int]:
    """Pids of the live pools of ``appname`` on ``host`` (``all_pools`` only returns
    states with an integer pid)."""
    return [
        state["pid"]
        for state in pool_state.all_pools()
        if state.get("appname") == appname and state.get("host") == host and state["pid"] != own_pid
    ]


def kill_other_pools(appname: str, host: str, own_pid: int) -> list[int]:
    """Send QUIT to the other live pools of ``appname`` on ``host``; returns their pids."""
    signalled = []
    for pid in other_pools(appname, host, own_pid):
        if not _is_pool_master(pid, appname):
            logger.warning("pool pid %d is not a resque-pool-master[%s]; leaving it", pid, appname)
            continue
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            continue
        logger.info("kill-others: sent QUIT to pool %d", pid)
        signalled.append(pid)
    return signalled


class KillOthers:
    """Waits, from the manager's loop, until this pool is complete and registered; then
    signals the other pools once."""

    CHECK_PERIOD = 0.5  # one Redis round trip, twice a second at most

    def __init__(self, appname: str, host: str, own_pid: int, enabled: bool) -> None:
        self.appname, self.host, self.own_pid = appname, host, own_pid
        self.pending = enabled
        self.logged_wait = False
        # The check repeats twice a second while Redis is down: once per distinct error.
        self.errors = LogOnce(logger)
        self.next_check = 0.0

    def tick(self, workers: WorkerTable, desired: dict[str, int]) -> None:
        now = time.monotonic()
        if not self.pending or now < self.next_check:
            return
        self.next_check = now + self.CHECK_PERIOD
        try:
            ready = workers.complete(desired) and workers_registered(
                proc.id for proc in workers.all() if not proc.stopping
            )
        except Exception as error:  # noqa: BLE001 (Redis down: try again later)
            self._log_error(f"could not read the workers from Redis: {error}")
            return
        if not ready:
            if not self.logged_wait:
                logger.info("kill-others: waiting for this pool's workers to register")
                self.logged_wait = True
            return
        try:
            kill_other_pools(self.appname, self.host, self.own_pid)
        except Exception as error:  # noqa: BLE001 (Redis down: try again next loop)
            self._log_error(f"could not list the other pools: {error}")
            return
        self.pending = False

    def _log_error(self, message: str) -> None:
        self.errors.error(message, "kill-others: %s; will retry", message)
