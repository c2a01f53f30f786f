"""The failed list, as Resque's ``Failure::Redis`` backend writes and edits it
(``resque_pool.failures``, the public short name).

``entries`` reads and writes entries (paging, filters, ``Selection``); ``edits`` retries and
removes one entry or a selection, each write checked against what was read. This package
only puts their public names side by side: ``failures.requeue(3)``, ``failures.page(...)``.
"""

from __future__ import annotations

from resque_pool.resque.failures.edits import (
    clear,
    clear_retried,
    remove,
    remove_queue,
    remove_selected,
    requeue,
    requeue_all,
    requeue_queue,
    requeue_selected,
)
from resque_pool.resque.failures.entries import (
    FAILED,
    Selection,
    all,
    backtrace_of,
    count,
    count_selected,
    create,
    each,
    entry,
    entry_digest,
    get,
    job_class_of,
    page,
    raw_page,
)

__all__ = [
    "FAILED",
    "Selection",
    "all",
    "backtrace_of",
    "clear",
    "clear_retried",
    "count",
    "count_selected",
    "create",
    "each",
    "entry",
    "entry_digest",
    "get",
    "job_class_of",
    "page",
    "raw_page",
    "remove",
    "remove_queue",
    "remove_selected",
    "requeue",
    "requeue_all",
    "requeue_queue",
    "requeue_selected",
]
