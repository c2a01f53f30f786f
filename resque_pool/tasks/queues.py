"""How a task's Django queue name and priority become a Resque queue name.

``<QUEUE_PREFIX><queue_name>`` for the default priority, with a band suffix otherwise:

====================  ======================  ====================
priority              band                    Resque queue
====================  ======================  ====================
1 .. 100              high                    ``<queue>.high``
0 (the default)       normal                  ``<queue>``
-100 .. -1            low                     ``<queue>.low``
====================  ======================  ====================

A worker reads its queues in order, so ``"emails.high,emails,emails.low"`` runs every
high-priority task before any normal one. Within a band tasks run in the order they were
enqueued. Generated names never contain ``:`` or ``,`` (worker ids and queue lists use
them), whitespace, or glob characters (``*?[`` and a leading ``!`` mean something in a
worker's queue list).
"""

from __future__ import annotations

import re

HIGH = "high"
LOW = "low"
BANDS = (HIGH, "", LOW)  # the order a worker should read them in

# Characters a Resque queue name made from a Django queue name must not contain.
_FORBIDDEN = re.compile(r"[:,\s*?\[]")


def band(priority: int) -> str:
    """``"high"``, ``""`` (normal) or ``"low"``."""
    if priority > 0:
        return HIGH
    if priority < 0:
        return LOW
    return ""


def resque_queue(queue_name: str, priority: int = 0, prefix: str = "") -> str:
    """The Resque queue a task with this Django queue name and priority is pushed to."""
    suffix = band(priority)
    return f"{prefix}{queue_name}.{suffix}" if suffix else f"{prefix}{queue_name}"


def resque_queues(queue_name: str, prefix: str = "") -> list[str]:
    """Every band's Resque queue for one Django queue, highest first (a worker's list)."""
    return [f"{prefix}{queue_name}.{b}" if b else f"{prefix}{queue_name}" for b in BANDS]


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be part of a Resque queue name, or None when it can."""
    if not name:
        return "it is empty"
    if name.startswith("!"):
        return "it starts with '!'"
    found = _FORBIDDEN.search(name)
    if found:
        char = found.group(0)
        return "it contains whitespace" if char.isspace() else f"it contains {char!r}"
    return None
