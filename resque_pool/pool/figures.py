"""What a pool counts about its workers' lives, published with its state (``state.py``'s
``figures``) for the metrics view (``resque_pool/metrics/``, docs/metrics.md).

Counters live in the manager's memory and start from zero with each manager, as a
process's Prometheus counters do (a new pool is a new ``pool`` label); they cost nothing
per job and ride on the state the manager writes about once a second anyway. The
workers' resident memory is read from ``/proc`` at each publish (Linux; elsewhere it is
left out).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class PoolFigures:
    spawned: int = 0  # workers forked, the first ones and every replacement
    recycled: int = 0  # exited after their max jobs or memory, replaced at once
    died: int = 0  # exited on their own (crashed, killed by someone else)
    hung_killed: int = 0  # killed by the manager for making no progress
    backoffs: int = 0  # times a list's next spawn was held back by the backoff

    def snapshot(self, pids: Iterable[int]) -> dict[str, int]:
        """The counters and the workers' resident memory (bytes, summed), for the state."""
        figures = asdict(self)
        rss = workers_rss_bytes(pids)
        if rss is not None:
            figures["rss_bytes"] = rss
        return figures


def workers_rss_bytes(pids: Iterable[int]) -> int | None:
    """The summed resident set of ``pids`` (``/proc/<pid>/statm``); a process gone since
    counts for nothing. None where ``/proc`` does not exist."""
    if not os.path.isdir("/proc/self"):
        return None
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{int(pid)}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * _PAGE_SIZE
        except (OSError, ValueError, IndexError):
            continue
    return total
