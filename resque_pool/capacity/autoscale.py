"""The autoscaling rule: how many workers an autoscaled queue list should run, between its
count (the floor) and its maximum, from what its queues hold. Pure: the readings come in
(``backlog.py`` reads Redis, the manager counts its busy workers), a target comes out.

The rule (docs/capacity.md, "Autoscaling"):

- **wanted** = the list's busy workers + its share of the backlog (the jobs waiting in its
  queues divided by the live pools that autoscale the same list, rounded up), kept between
  the floor and the maximum. Sharing is what keeps several pools from each growing by the
  whole backlog: N pools grow by the backlog in all, each by its part.
- **Up**, at once, to wanted, when the oldest waiting job has waited at least the target
  latency (``RESQUE_POOL_AUTOSCALE_LATENCY``; with 0, as soon as the jobs waiting
  outnumber the idle workers, since wanted counts busy workers plus jobs).
- **Down**, only once wanted stayed below the target for a whole cooldown
  (``RESQUE_POOL_AUTOSCALE_COOLDOWN``, and at least that long after the last change): to
  the most wanted by the looks of the last cooldown, so a stream with gaps between its
  jobs does not flap. Only the last cooldown's looks count: the look that opened the
  quiet spell often caught a burst's last jobs still running, and holding that many for a
  second cooldown made the way back to the floor a staircase (``bench/autoscale.py``).
  Wanted is never below the busy workers, so only idle workers are stopped (the
  reconciler picks idle ones first).
- A floor raised or a maximum lowered (the admin, a reload) moves the target at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Reading:
    """One look at an autoscaled list: jobs waiting in its queues, the seconds the oldest
    has waited at least (0 when unknown), its busy workers in this pool, and how many live
    pools autoscale it (this one included)."""

    backlog: int
    waited: float
    busy: int
    pools: int = 1


@dataclass(frozen=True)
class Decision:
    """A change of an autoscaled list's target, and why."""

    at: float  # time.time()
    before: int
    after: int
    reason: str

    def as_state(self) -> dict[str, Any]:
        return {
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds"),
            "from": self.before,
            "to": self.after,
            "reason": self.reason,
        }


@dataclass
class ListScale:
    """One autoscaled list: its bounds, its target and how it got there."""

    floor: int
    maximum: int
    target: int
    changed_at: float = -math.inf  # monotonic; the last change of the target
    low_since: float | None = None  # since when wanted stayed below the target
    # (time, wanted) of the looks since then, the last cooldown's only
    low_looks: list[tuple[float, int]] = field(default_factory=list)
    decision: Decision | None = None
    ups: int = 0  # times the target grew (the metrics' counters)
    downs: int = 0

    def as_state(self) -> dict[str, Any]:
        return {
            "floor": self.floor,
            "max": self.maximum,
            "target": self.target,
            "decision": self.decision.as_state() if self.decision else None,
            "ups": self.ups,
            "downs": self.downs,
        }


class Autoscaler:
    def __init__(
        self,
        latency: float,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.latency = latency
        self.cooldown = cooldown
        self.clock = clock
        self.wall = wall
        self.lists: dict[str, ListScale] = {}

    def set_bounds(
        self, counts: Mapping[str, int], maximums: Mapping[str, int]
    ) -> list[tuple[str, Decision]]:
        """The lists that autoscale now (a maximum and a count) and their bounds. A new
        list starts at its floor; a list whose bounds moved past its target follows them
        at once; a list no longer autoscaled is forgotten (its count applies as it is)."""
        decisions = []
        # A maximum under its floor (the last good maximums beside new counts) is the floor.
        wanted = {q: (counts[q], max(top, counts[q])) for q, top in maximums.items() if q in counts}
        for queues in [q for q in self.lists if q not in wanted]:
            del self.lists[queues]
        for queues, (floor, maximum) in wanted.items():
            scale = self.lists.get(queues)
            if scale is None:
                self.lists[queues] = ListScale(floor, maximum, floor)
                continue
            scale.floor, scale.maximum = floor, maximum
            bounded = min(max(scale.target, floor), maximum)
            if bounded != scale.target:
                reason = f"bounds are now {floor}..{maximum}"
                decisions.append((queues, self._change(queues, scale, bounded, reason)))
        return decisions

    def sized(self, counts: Mapping[str, int]) -> dict[str, int]:
        """``counts`` with each autoscaled list's target in place of its floor."""
        return {
            queues: self.lists[queues].target if queues in self.lists else count
            for queues, count in counts.items()
        }

    def observe(self, queues: str, reading: Reading) -> Decision | None:
        """Apply the rule to one look at ``queues``; the decision when the target moved."""
        scale = self.lists.get(queues)
        if scale is None:
            return None
        now = self.clock()
        share = math.ceil(reading.backlog / max(reading.pools, 1))
        wanted = min(max(reading.busy + share, scale.floor), scale.maximum)
        if wanted >= scale.target:
            scale.low_since, scale.low_looks = None, []
        if wanted > scale.target:
            if reading.waited < self.latency:
                return None
            return self._change(queues, scale, wanted, _why_up(reading, wanted, scale))
        if wanted < scale.target:
            if scale.low_since is None:
                scale.low_since = now
            looks = [(at, w) for at, w in scale.low_looks if now - at < self.cooldown]
            scale.low_looks = [*looks, (now, wanted)]
            calm = min(now - scale.low_since, now - scale.changed_at)
            if calm >= self.cooldown:
                peak = max(w for _at, w in scale.low_looks)
                reason = (
                    f"needed at most {peak} for {self.cooldown:g}s "
                    f"({reading.busy} busy, {reading.backlog} waiting)"
                )
                return self._change(queues, scale, peak, reason)
        return None

    def _change(self, queues: str, scale: ListScale, target: int, reason: str) -> Decision:
        decision = Decision(self.wall(), scale.target, target, reason)
        if target > scale.target:
            scale.ups += 1
        else:
            scale.downs += 1
        scale.target, scale.changed_at, scale.decision = target, self.clock(), decision
        scale.low_since, scale.low_looks = None, []
        return decision

    def state(self) -> dict[str, dict[str, Any]]:
        """Each autoscaled list's bounds, target and last decision, for the pool's state."""
        return {queues: scale.as_state() for queues, scale in self.lists.items()}


def _why_up(reading: Reading, wanted: int, scale: ListScale) -> str:
    shared = f" (a 1/{reading.pools} share)" if reading.pools > 1 else ""
    capped = f", capped at the maximum {scale.maximum}" if wanted == scale.maximum else ""
    return (
        f"{reading.backlog} jobs waiting{shared}, the oldest {reading.waited:.0f}s, "
        f"{reading.busy} busy{capped}"
    )
