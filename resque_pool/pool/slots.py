"""How many workers a pool may run while other processes still hold slots of its counts.

During a switch (a HUP deploy's older generation draining, or the pools a ``--hot-swap``
takes over) the workers being replaced and their replacements must never add up to more
than the counts, per queue list and in all: each slot freed is filled, none is added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def fit(
    wanted: Mapping[str, int], held: Mapping[str, int], running: Callable[[str], int]
) -> dict[str, int]:
    """The counts to run now: per list, ``wanted`` less what others ``held``; in all, the
    total of ``wanted`` less the total held (slots held on a list no longer wanted still
    count). The workers already ``running(queues)`` keep their slots first (never stopped
    to make room), so a freed slot goes to a list that is short."""
    if not held:
        return dict(wanted)
    room = max(sum(wanted.values()) - sum(held.values()), 0)
    share = {queues: max(count - held.get(queues, 0), 0) for queues, count in wanted.items()}
    result = {}
    for queues, count in share.items():
        result[queues] = min(count, running(queues))
        room -= result[queues]
    for queues, count in share.items():
        extra = max(min(count - result[queues], room), 0)
        result[queues] += extra
        room -= extra
    return result


def merge(*helds: Mapping[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for held in helds:
        for queues, count in held.items():
            total[queues] = total.get(queues, 0) + count
    return total
