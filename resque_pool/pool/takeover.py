"""``--hot-swap``: take over the other pools of this app on this host, slot by slot.

resque-pool's hot swap starts a whole second pool beside the first and stops the first
once the second runs: two sets of workers, twice the memory for as long as the old jobs
take (its issue #139). Here the new pool, once its code and counts are loaded, sends the
other pools QUIT (each of their workers finishes its job, takes no other and exits) and
forks into each slot as an old worker leaves it: the app never runs more workers on this
host than the counts, and a queue waits for a worker only for the moment between an old
worker's exit and the fork that replaces it (the loop looks every ``POLL`` seconds while
old workers remain).

The other pools are found through their health files (``resque_pool/health.py``): local,
so a Redis outage does not hide them. Only pools of the same app that serve the same Resque
data (Redis and namespace) are taken over: a staging pool of the same checkout on the
same host is another deployment. Their workers are followed by pid and start time,
so a pid the kernel hands out again is not taken for a worker still holding a slot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

from resque_pool.health import NoPool, find_pools
from resque_pool.resque.connection import describe_redis, namespace
from resque_pool.resque.records import parse_worker_id
from resque_pool.unix.process import identity

logger = logging.getLogger(__name__)

POLL = 0.05  # seconds between looks while old workers hold slots


class TakeOver:
    def __init__(self, appname: str, own_pid: int) -> None:
        self.appname = appname
        self.own_pid = own_pid
        self.begun = False
        # (pid, start time) -> queue list, of the other pools' workers still running.
        self.old_workers: dict[tuple[int, int], str] = {}

    @property
    def active(self) -> bool:
        return bool(self.old_workers)

    def held(self) -> dict[str, int]:
        """The slots the other pools' workers still hold, per queue list; the first call
        stops the other pools."""
        if not self.begun:
            self.begin()
        self.old_workers = {
            proc: queues for proc, queues in self.old_workers.items() if identity(proc[0]) == proc
        }
        held: dict[str, int] = {}
        for queues in self.old_workers.values():
            held[queues] = held.get(queues, 0) + 1
        return held

    def begin(self) -> None:
        self.begun = True
        try:
            pools = find_pools(appname=self.appname)
        except NoPool:
            pools = []
        ours = {"redis": describe_redis(), "namespace": namespace()}
        for pool in pools:
            if pool.pid == self.own_pid or pool.age == float("inf"):
                continue
            if any(pool.state.get(name) != value for name, value in ours.items()):
                continue
            for worker_id in pool.state.get("workers") or []:
                parsed = parse_worker_id(worker_id)
                proc = identity(int(parsed.pid)) if parsed.well_formed else None
                if proc is not None:
                    self.old_workers[proc] = ",".join(parsed.queues)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pool.pid, signal.SIGQUIT)
                logger.info(
                    "hot swap: sent QUIT to pool %d; taking over its %d worker slot(s) as its "
                    "workers finish their jobs",
                    pool.pid,
                    sum(1 for _ in pool.state.get("workers") or []),
                )
