"""The documented import path of delayed jobs (``from resque_pool.scheduler import
delayed``; docs/scheduling.md). The key layout lives with the rest of Resque's data in
``resque/delayed.py``, scheduling with hooks in ``resque/producer.py``: this module only
names what the documentation promises, so that the data layer never imports the scheduler.
"""

from __future__ import annotations

from resque_pool.resque.delayed import (
    DelayedJob,
    delayed_count,
    items_at,
    timestamp_count,
    timestamps,
)
from resque_pool.resque.producer import enqueue_at, enqueue_in, remove_delayed, scheduled_at

__all__ = [
    "DelayedJob",
    "delayed_count",
    "enqueue_at",
    "enqueue_in",
    "items_at",
    "remove_delayed",
    "scheduled_at",
    "timestamp_count",
    "timestamps",
]
