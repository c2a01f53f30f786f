"""The documented import path of ``Retry`` (``from resque_pool.scheduler.retry import
Retry``; docs/scheduling.md). resque-retry's key and counter are Resque data and live in
``resque/retry.py``, which the job's outcome writes in the same transaction.
"""

from __future__ import annotations

from resque_pool.resque.retry import Retry

__all__ = ["Retry"]
