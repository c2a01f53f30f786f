"""The pool's memory budget: what its process tree may use, what it uses, and how many
more workers fit.

- **The budget** (``configured_budget``): ``RESQUE_POOL_MEMORY_BUDGET_MB`` when set (``0``
  turns the budget off), else the container's memory limit (``cgroup.py``) less
  ``MARGIN``; no limit found, no budget.
- **Use** (``MemoryBudget.measure``): the summed PSS of the tree under the pool's root
  (the master when there is one, its generations, their workers and the workers' job
  children: ``unix/process.py``'s ``tree``), from ``/proc/<pid>/smaps_rollup``'s
  ``Pss:`` line, or the resident set of ``/proc/<pid>/statm`` where there is no
  smaps_rollup (kernels before 4.14). PSS splits each shared page between the processes
  that share it, so the sum is what the tree costs the machine, which the container's
  limit also counts.
- **A new worker's cost** (``estimate``): the largest PSS any current worker has been
  measured at (with its job children), or a worker that exited in the last ``REMEMBER``
  seconds; before a worker has settled (``SETTLE`` seconds) or exited, the largest the
  manager's own was measured at. A worker that has not settled counts as at least the
  estimate (it grows as it stops sharing the manager's pages).
- **Admission** (``admit``): of the workers the pool is about to fork, the first ``n``
  with ``used + n * estimate <= budget``; the rest are refused until a later reading has
  room, logged once per episode (``logs.LogOnce``) and once when forks fit again.

Reading smaps_rollup is not free: about 0.8 ms per worker of the demo project on the
development machine, 55 to 90 ms for 64 workers (docs/capacity.md), where ``statm`` costs
1 ms for all of them. So the tree is read at most every ``READ_PERIOD`` seconds for the
published state, and for a fork decision only when the workers changed or
``DECISION_PERIOD`` passed (``REFUSED_PERIOD`` while forks are being refused): never for
a loop round that forks nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resque_pool.capacity.cgroup import NONE, Limit, container_limit
from resque_pool.conf import settings
from resque_pool.logs import LogOnce
from resque_pool.unix.process import rss_bytes, tree

logger = logging.getLogger(__name__)

MB = 2**20  # the settings' MB, as RESQUE_WORKER_MAX_MEMORY_MB's
MARGIN = 0.10  # the default budget leaves this share of the container's limit free
READ_PERIOD = 10.0  # seconds between readings for the published state (pool/figures.py's)
DECISION_PERIOD = 1.0  # a fork decision reuses a reading this young of the same workers
REFUSED_PERIOD = 3.0  # ... or this young while forks are being refused
SETTLE = 10.0  # seconds a new worker counts as at least the estimate (it is still growing)
REMEMBER = 300.0  # seconds an exited worker's largest PSS still counts for the estimate
ROOM_UNKNOWN = 1_000_000  # nothing measured yet to divide by: every worker fits
SETTING = "setting"


def pss_bytes(pid: int) -> int | None:
    """The process's proportional set size in bytes (``smaps_rollup``), its resident set
    (``statm``) where smaps_rollup does not exist; None when it is gone or unreadable."""
    try:
        with open(f"/proc/{int(pid)}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
        return None
    except FileNotFoundError:
        pass  # no smaps_rollup (an old kernel), or the process is gone: statm says which
    except (OSError, ValueError, IndexError):
        return None
    return rss_bytes(int(pid))


@dataclass(frozen=True)
class Budget:
    """What the tree may use: ``bytes`` (None: no budget), where that came from
    (``setting``, ``cgroup v2``, ``cgroup v1``, ``none``) and why no limit was read, if a
    file was of another shape."""

    bytes: int | None
    source: str
    limit: Limit | None = None

    @property
    def problem(self) -> str | None:
        """Why the container's limit could not be read, if it could not."""
        return self.limit.problem if self.limit else None


def configured_budget(
    setting_mb: int | None, read_limit: Callable[[], Limit] = container_limit
) -> Budget:
    """The budget for ``RESQUE_POOL_MEMORY_BUDGET_MB``'s value: its MB, ``0``: off, None:
    the container's limit less ``MARGIN`` (or no budget when there is no limit)."""
    if setting_mb is not None:
        return Budget(int(setting_mb) * MB if setting_mb else None, SETTING)
    limit = read_limit()
    if limit.bytes is None:
        return Budget(None, NONE, limit)
    return Budget(int(limit.bytes * (1 - MARGIN)), limit.source, limit)


@dataclass
class Reading:
    """One measurement of the tree: when, its summed PSS, each worker's (with its job
    children) and the manager's own."""

    at: float
    used: int
    workers: dict[int, int]
    manager: int


@dataclass
class MemoryBudget:
    """The budget of one pool's tree. ``root_pid``: the top of the tree measured (the
    master, when a master runs the generations); ``manager_pid``: the process forking the
    workers.

    A worker just forked shares nearly every page with the manager, so its PSS (and the
    tree's) grows for a while after the fork: for ``SETTLE`` seconds from when a reading
    first saw it, a worker counts as at least the estimate (``pending``), and the
    estimate comes from the workers that have settled, or, while none has, from the
    largest PSS the manager was measured at (before its first fork, nothing shared its
    pages). Without that, one batch of forks would look free and the next batch would
    overshoot."""

    budget: Budget
    root_pid: int
    manager_pid: int
    clock: Callable[[], float] = time.monotonic
    reading: Reading | None = None
    refused: int = 0  # workers not forked at the last decision
    peaks: dict[int, int] = field(default_factory=dict)  # each current worker's largest PSS
    departed: dict[int, tuple[int, float]] = field(default_factory=dict)  # (peak, exit seen)
    seen: dict[int, float] = field(default_factory=dict)  # when a reading first saw each
    manager_peak: int = 0
    refusals: LogOnce = field(default_factory=lambda: LogOnce(logger, logging.WARNING))

    @classmethod
    def from_settings(cls, manager_pid: int) -> MemoryBudget:
        budget = configured_budget(settings.RESQUE_POOL_MEMORY_BUDGET_MB)
        if budget.problem:
            logger.warning("memory budget: %s", budget.problem)
        if budget.bytes is not None:
            logger.info("memory budget: %s", describe(budget))
        return cls(budget, manager_pid, manager_pid)

    @property
    def enabled(self) -> bool:
        return self.budget.bytes is not None

    # -- measuring ---------------------------------------------------------------------------

    def measure(self, workers: Iterable[int]) -> Reading:
        """Read the tree now: its summed PSS, each worker's with its job children."""
        now = self.clock()
        children = tree(self.root_pid)
        children.setdefault(self.manager_pid, [])
        sizes = {pid: pss_bytes(pid) or 0 for pid in children}
        per_worker = {}
        for pid in workers:
            below, pending = 0, list(children.get(pid, ()))
            while pending:
                child = pending.pop()
                below += sizes.get(child, 0)
                pending.extend(children.get(child, ()))
            per_worker[pid] = sizes.get(pid, 0) + below
        for pid in self.peaks.keys() - per_worker.keys():
            self.departed[pid] = (self.peaks[pid], now)
        self.departed = {
            pid: (peak, at) for pid, (peak, at) in self.departed.items() if now - at < REMEMBER
        }
        self.peaks = {pid: max(size, self.peaks.get(pid, 0)) for pid, size in per_worker.items()}
        self.seen = {pid: self.seen.get(pid, now) for pid in per_worker}
        self.manager_peak = max(self.manager_peak, sizes[self.manager_pid])
        self.reading = Reading(now, sum(sizes.values()), per_worker, sizes[self.manager_pid])
        return self.reading

    def fresh(self, workers: Sequence[int], period: float) -> Reading:
        """The last reading when it is younger than ``period`` and of the same workers,
        else a new one."""
        reading = self.reading
        if (
            reading is None
            or self.clock() - reading.at >= period
            or set(reading.workers) != set(workers)
        ):
            reading = self.measure(workers)
        return reading

    def settled(self, pid: int) -> bool:
        return self.clock() - self.seen.get(pid, self.clock()) >= SETTLE

    def estimate(self) -> int:
        """What one more worker takes: the largest PSS a current worker was measured at,
        once one has settled, or a worker that exited within ``REMEMBER`` seconds (a pool
        whose workers recycle after each job would otherwise forget its largest job as
        soon as its worker exits); before that, the largest the manager was measured at."""
        known = [*self.peaks.values(), *(peak for peak, _ in self.departed.values())]
        if self.departed or any(self.settled(pid) for pid in self.peaks):
            return max(known)
        return max([self.manager_peak, *known])

    def pending(self, estimate: int) -> int:
        """What the workers that have not settled yet may still grow by: each counts as
        at least ``estimate``, and the manager as its largest reading (the pages it
        shares with a new worker count for it again once the worker wrote its copy)."""
        if self.reading is None:
            return 0
        new = [size for pid, size in self.reading.workers.items() if not self.settled(pid)]
        if not new:
            return 0
        manager = max(self.manager_peak - self.reading.manager, 0)
        return manager + sum(max(estimate - size, 0) for size in new)

    # -- deciding ----------------------------------------------------------------------------

    def fits(self, wanted: int, workers: Sequence[int]) -> int:
        """How many of ``wanted`` more workers fit (``used + n * estimate <= budget``,
        ``used`` counting new workers at the estimate), read right before the decision
        (or within ``DECISION_PERIOD`` of the same workers, ``REFUSED_PERIOD`` while
        refusing)."""
        if not self.enabled or wanted <= 0:
            return max(wanted, 0)
        period = REFUSED_PERIOD if self.refused else DECISION_PERIOD
        reading = self.fresh(workers, period)
        return min(wanted, self._room(reading))

    def _room(self, reading: Reading) -> int:
        """How many more workers fit after ``reading``."""
        assert self.budget.bytes is not None
        estimate = self.estimate()
        free = self.budget.bytes - reading.used - self.pending(estimate)
        if free < 0:
            return 0
        if estimate <= 0:
            return ROOM_UNKNOWN
        return free // estimate

    def admit(self, missing: list[str], workers: Sequence[int]) -> list[str]:
        """The first of ``missing`` (one queue list per worker to fork) that fit; the
        others are refused (one log line per episode) and tried again at a later call.
        An empty ``missing`` (nothing short) ends an episode."""
        allowed = self.fits(len(missing), workers)
        refused = missing[allowed:]
        self.refused = len(refused)
        if refused:
            assert self.reading is not None and self.budget.bytes is not None
            estimate = self.estimate()
            pending = self.pending(estimate)
            self.refusals.error(
                "refusing",
                "memory budget: not forking %d worker%s for %s: the pool uses %d MB of %d MB "
                "and a worker takes about %d MB%s",
                len(refused),
                "" if len(refused) == 1 else "s",
                " and ".join(dict.fromkeys(refused)),
                round(self.reading.used / MB),
                round(self.budget.bytes / MB),
                round(estimate / MB),
                f" (new workers may grow by {round(pending / MB)} MB more)" if pending else "",
            )
        elif self.refusals.active:
            self.refusals.clear(
                "memory budget: forks fit again: the pool uses %d MB of %d MB",
                round(self.reading.used / MB) if self.reading else 0,
                round((self.budget.bytes or 0) / MB),
            )
        return missing[:allowed]

    # -- showing -----------------------------------------------------------------------------

    def snapshot(self, workers: Sequence[int]) -> dict[str, Any]:
        """The ``memory`` object of the published state (``pool/state.py``), read at most
        every ``READ_PERIOD`` seconds (or when the workers changed)."""
        self.fresh(workers, READ_PERIOD)
        reading = self.reading
        estimate = self.estimate() if reading else None
        fit = None
        if self.enabled and reading is not None and estimate:
            fit = self._room(reading)
        state: dict[str, Any] = {
            "budget_bytes": self.budget.bytes,
            "source": self.budget.source,
            "used_bytes": reading.used if reading else None,
            "worker_bytes": estimate,
            "fit": fit,
            "refused": self.refused,
        }
        if self.budget.problem:
            state["problem"] = self.budget.problem
        return state


def describe(budget: Budget) -> str:
    """``900 MB (cgroup v1 memory.limit_in_bytes 1000 MB less 10 %)`` and the like."""
    if budget.bytes is None:
        return "off" if budget.source == SETTING else "none (no memory limit found)"
    text = f"{round(budget.bytes / MB)} MB"
    if budget.source == SETTING:
        return f"{text} (RESQUE_POOL_MEMORY_BUDGET_MB)"
    limit = budget.limit
    assert limit is not None and limit.bytes is not None
    name = Path(limit.path).name if limit.path else "limit"
    return f"{text} ({budget.source} {name} {round(limit.bytes / MB)} MB less {MARGIN:.0%})"
