"""The manager's side of autoscaling: when due, look at the autoscaled lists' queues, count
their busy workers, and let the rule (``capacity/autoscale.py``) move their targets;
every change is one log line and part of the published state.

Only a pool with an autoscaled list looks at all: one pipelined round trip per
``RESQUE_POOL_AUTOSCALE_INTERVAL`` (two with a wildcard list); and while jobs wait, at
most every ``SHARE_PERIOD``, the pools' states, to count the live pools that autoscale the
same list and share its backlog (an idle pool never reads them).
A Redis that does not answer is logged once; the targets stay where they are meanwhile.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import redis as redis_lib

from resque_pool.capacity.autoscale import Autoscaler, Decision, Reading
from resque_pool.capacity.backlog import BacklogReader
from resque_pool.conf import settings
from resque_pool.logs import LogOnce
from resque_pool.pool import state as pool_state
from resque_pool.pool.processes import WorkerTable
from resque_pool.resque.outages import outage

logger = logging.getLogger(__name__)

SHARE_PERIOD = 5.0  # seconds between two counts of the pools sharing a list


class AutoscaleWatch:
    def __init__(self, workers: WorkerTable) -> None:
        self.workers = workers
        self.interval = float(settings.RESQUE_POOL_AUTOSCALE_INTERVAL)
        self.autoscaler = Autoscaler(
            float(settings.RESQUE_POOL_AUTOSCALE_LATENCY),
            float(settings.RESQUE_POOL_AUTOSCALE_COOLDOWN),
        )
        self.reader = BacklogReader()
        self.next_look = 0.0
        self.next_share = 0.0
        self.sharing: dict[str, int] = {}  # list: live pools autoscaling it, this one too
        self.failing = LogOnce(logger)

    def set_bounds(self, counts: Mapping[str, int], maximums: Mapping[str, int]) -> None:
        for queues, decision in self.autoscaler.set_bounds(counts, maximums):
            self.log(queues, decision)

    def sized(self, counts: Mapping[str, int]) -> dict[str, int]:
        return self.autoscaler.sized(counts)

    def deadline(self) -> float:
        return self.next_look if self.autoscaler.lists else math.inf

    def state(self) -> dict[str, dict[str, Any]]:
        return self.autoscaler.state()

    def tick(self, pool_id: str) -> None:
        """Look and decide when due; ``pool_id`` is the state this pool publishes (not
        counted among the pools sharing a list)."""
        now = time.monotonic()
        lists = list(self.autoscaler.lists)
        if not lists or now < self.next_look:
            return
        self.next_look = now + self.interval
        try:
            backlogs = self.reader.read(lists)
            if now >= self.next_share and any(backlog.jobs for backlog in backlogs.values()):
                self.next_share = now + SHARE_PERIOD
                self.sharing = self.count_sharing(lists, pool_id)
        except redis_lib.RedisError as error:
            kind = outage(error) or str(error)
            self.failing.error(
                kind, "autoscaling: could not look at the queues (%s); targets kept", error
            )
            return
        self.failing.clear("autoscaling: the queues can be looked at again")
        for queues, backlog in backlogs.items():
            reading = Reading(
                backlog.jobs, backlog.waited, self.workers.busy(queues), self.sharing.get(queues, 1)
            )
            decision = self.autoscaler.observe(queues, reading)
            if decision is not None:
                self.log(queues, decision)

    @staticmethod
    def count_sharing(lists: list[str], pool_id: str) -> dict[str, int]:
        """Per list, this pool and the other live pools whose state says they autoscale
        it (a pool stopping or paused takes no share)."""
        sharing = dict.fromkeys(lists, 1)
        for state in pool_state.all_pools():
            scaled = state.get("autoscale")
            if state.get("id") == pool_id or not isinstance(scaled, dict):
                continue
            if state.get("status") != "running":
                continue
            for queues in lists:
                if queues in scaled:
                    sharing[queues] += 1
        return sharing

    @staticmethod
    def log(queues: str, decision: Decision) -> None:
        logger.info(
            "autoscale %s: %d -> %d workers: %s",
            queues,
            decision.before,
            decision.after,
            decision.reason,
        )
