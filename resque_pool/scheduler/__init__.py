"""Delayed and recurring jobs on resque-scheduler's keys, and retries on resque-retry's.

``delayed`` schedules one job for later; ``mover`` moves due jobs to their queues;
``process`` is the scheduler process (alone or as a child of the pool manager);
``recurring`` fires the ``Schedule`` rows; ``retry`` retries failed jobs.
Short imports: ``from resque_pool.scheduler import enqueue_at, enqueue_in, Retry``.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "enqueue_at": "delayed",
    "enqueue_in": "delayed",
    "remove_delayed": "delayed",
    "scheduled_at": "delayed",
    "delayed_count": "delayed",
    "Retry": "retry",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package never touches Django's app registry early.
    if name not in _PUBLIC:
        raise AttributeError(f"module 'resque_pool.scheduler' has no attribute {name!r}")
    module = importlib.import_module(f"resque_pool.scheduler.{_PUBLIC[name]}")
    return getattr(module, name)
