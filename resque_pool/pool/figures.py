"""What a pool counts about its workers' lives, published with its state (``state.py``'s
``figures``) for the metrics view (``resque_pool/metrics/``, docs/metrics.md).

Counters live in the manager's memory and start from zero with each manager, as a
process's Prometheus counters do (a new pool is a new ``pool`` label); they cost nothing
per job and ride on the state the manager writes anyway. The manager publishes its state
when it changes (and refreshes it a few times per expiry): the workers' resident memory,
which moves all the time, is read from ``/proc`` when the workers change and otherwise at
most every ``RSS_PERIOD`` seconds, so that it changes the state about as seldom as the
refresh writes it (Linux; elsewhere it
is left out).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from resque_pool.unix.process import rss_bytes

RSS_PERIOD = 10.0  # seconds; the state's own refresh is a third of its 30 s expiry
COUNTERS = ("spawned", "recycled", "died", "hung_killed", "backoffs")


@dataclass
class PoolFigures:
    spawned: int = 0  # workers forked, the first ones and every replacement
    recycled: int = 0  # exited after their max jobs or memory, replaced at once
    died: int = 0  # exited on their own (crashed, killed by someone else)
    hung_killed: int = 0  # killed by the manager for making no progress
    backoffs: int = 0  # times a list's next spawn was held back by the backoff
    _rss: int | None = field(default=None, repr=False)
    _rss_read_at: float = field(default=float("-inf"), repr=False)
    _rss_pids: tuple[int, ...] = field(default=(), repr=False)

    def snapshot(self, pids: Iterable[int]) -> dict[str, int]:
        """The counters and the workers' resident memory (bytes, summed, as last read),
        for the state."""
        figures = {name: getattr(self, name) for name in COUNTERS}
        now, pids = time.monotonic(), tuple(sorted(pids))
        # Read again when the workers changed (the state changes then anyway) or the
        # period passed.
        if pids != self._rss_pids or now - self._rss_read_at >= RSS_PERIOD:
            self._rss, self._rss_read_at, self._rss_pids = workers_rss_bytes(pids), now, pids
        if self._rss is not None:
            figures["rss_bytes"] = self._rss
        return figures


def workers_rss_bytes(pids: Iterable[int]) -> int | None:
    """The summed resident set of ``pids`` (``/proc/<pid>/statm``); a process gone since
    counts for nothing. None where ``/proc`` does not exist."""
    if not os.path.isdir("/proc/self"):
        return None
    return sum(rss_bytes(int(pid)) or 0 for pid in pids)
