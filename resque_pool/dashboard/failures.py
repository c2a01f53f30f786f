"""The failed list as the dashboard shows and edits it.

Failure ids are list indexes (as in Resque), so an index shown on a page may point at
another entry by the time someone clicks (an entry removed or the list cleared in between).
Every page therefore carries a digest of each entry's stored text, and retrying or removing
one entry goes through ``failure.requeue``/``failure.remove`` with that digest, which act
only if the entry at that index is still that one (see ``resque/failures/edits.py``).
"""

from __future__ import annotations

from typing import Any

from resque_pool.dashboard.data import decode_json, describe_payload, pretty
from resque_pool.errors import FailureNotFound
from resque_pool.resque import failures as failure
from resque_pool.resque import records, wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.failures import entry_digest
from resque_pool.resque.retry import attempts_in

# Any reason an entry is not the one shown: gone (FailureNotFound) or replaced (FailureMoved).
EntryMoved = FailureNotFound


def describe(index: int, raw: str) -> dict[str, Any]:
    """A failure entry ready for a template; missing or oddly typed keys never raise."""
    item, ok = decode_json(raw)
    if not ok or not isinstance(item, dict):
        item = {"payload": item, "exception": "(unreadable entry)", "error": str(raw)[:2000]}
    payload = describe_payload(item.get("payload"))
    backtrace = item.get("backtrace")
    if isinstance(backtrace, str):
        backtrace = backtrace.splitlines()
    elif not isinstance(backtrace, list):
        backtrace = []
    worker = item.get("worker")
    worker_text = str(worker) if worker is not None else ""
    parsed = records.parse_worker_id(worker_text) if worker_text else None
    failed_at = item.get("failed_at")
    retried_at = item.get("retried_at")
    return {
        "index": index,
        "digest": entry_digest(raw),
        "failed_at": failed_at,
        "failed_at_time": wire.parse_time(failed_at) if isinstance(failed_at, str) else None,
        "retried_at": retried_at,
        "exception": _text(item.get("exception")),
        "error": _text(item.get("error")),
        "backtrace": [str(line) for line in backtrace],
        "worker": worker_text,
        "worker_short": f"{parsed.host}:{parsed.pid}" if parsed else "",
        "queue": _text(item.get("queue")),
        "class": payload["class"],
        "args_text": payload["args_text"],
        "payload_text": pretty(item.get("payload")),
        "retryable": payload["valid"] and bool(item.get("queue")),
        "attempts": attempts_in(item),  # a give-up of @job(retry=...): how many were made
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else pretty(value)


def page(
    start: int, size: int, selection: failure.Selection | None = None
) -> tuple[list[dict], int]:
    """Entries newest first (highest index first) and the number matching; reads only the
    page's slice, or scans in batches when filtering (see ``failure.raw_page``)."""
    rows, total = failure.raw_page(start, size, selection=selection or failure.Selection())
    return [describe(index, raw) for index, raw in rows], total


def lookup(index: int, digest: str) -> dict[str, Any] | None:
    """The entry at ``index`` if it still has ``digest``, else None."""
    raw = get_redis().lindex(key(failure.FAILED), index)
    if raw is None or raw == "" or entry_digest(raw) != digest:
        return None
    return describe(index, raw)


def retry(index: int, digest: str) -> dict[str, Any]:
    """Resque's ``requeue`` of the entry shown (see ``failure.requeue``)."""
    item = failure.requeue(index, digest)
    return {"queue": item["queue"], "job_class": item["payload"]["class"]}


def remove(index: int, digest: str) -> None:
    """Resque's ``remove`` of the entry shown (see ``failure.remove``)."""
    failure.remove(index, digest)
