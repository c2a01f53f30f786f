"""The worker process: its loop, options, signals, job child, heartbeat and procline.

``from resque_pool.worker import Worker`` works as before the package existed; the import
is lazy so that importing this package does not import Django's database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resque_pool.resque.pruning import cleanup_dead_worker
    from resque_pool.resque.worker_records import make_worker_id
    from resque_pool.worker.loop import Worker

__all__ = ["Worker", "cleanup_dead_worker", "make_worker_id"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from resque_pool.worker.loop import Worker

        return Worker
    if name == "make_worker_id":
        from resque_pool.resque.worker_records import make_worker_id

        return make_worker_id
    if name == "cleanup_dead_worker":
        from resque_pool.resque.pruning import cleanup_dead_worker

        return cleanup_dead_worker
    raise AttributeError(f"module 'resque_pool.worker' has no attribute {name!r}")
