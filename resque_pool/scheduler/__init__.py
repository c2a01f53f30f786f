"""Delayed and recurring jobs on resque-scheduler's keys, and retries on resque-retry's.

``delayed`` schedules one job for later; ``mover`` moves due jobs to their queues;
``process`` is the scheduler process (alone or as a child of the pool manager).
Short imports: ``from resque_pool.scheduler import enqueue_at, enqueue_in``.
"""

from __future__ import annotations

from typing import Any

_PUBLIC = {
    "enqueue_at",
    "enqueue_in",
    "remove_delayed",
    "scheduled_at",
    "delayed_count",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package never touches Django's app registry early.
    if name not in _PUBLIC:
        raise AttributeError(f"module 'resque_pool.scheduler' has no attribute {name!r}")
    from resque_pool.scheduler import delayed

    return getattr(delayed, name)
