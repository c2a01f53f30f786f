"""The failed list as the dashboard shows and edits it.

Failure ids are list indexes (as in Resque), so an index shown on a page may point at
another entry by the time someone clicks (an entry removed or the list cleared in between).
Every page therefore carries a digest of each entry's stored text, and retrying or removing
one entry happens in a ``WATCH``/``MULTI`` transaction that first checks the entry at that
index still has that digest. Nothing is done to an entry that moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import redis as redis_lib

from .. import failure, wire
from ..connection import get_redis, key
from .data import decode_json, describe_payload, parse_worker_id, pretty

_BATCH = 500


class EntryMoved(Exception):
    """The entry at that index is not the one the page showed."""


def entry_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:20]


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
    parsed = parse_worker_id(worker_text) if worker_text else None
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
        "worker_short": f"{parsed['host']}:{parsed['pid']}" if parsed else "",
        "queue": _text(item.get("queue")),
        "class": payload["class"],
        "args_text": payload["args_text"],
        "payload_text": pretty(item.get("payload")),
        "retryable": payload["valid"] and bool(item.get("queue")),
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else pretty(value)


def page(start: int, size: int, class_name: str | None = None) -> tuple[list[dict], int]:
    """Entries newest first (highest index first) and the number matching.

    Without a filter only the page's slice is read (``LLEN`` + one ``LRANGE``). With a class
    filter the list is scanned newest first in batches, keeping only the requested slice in
    memory (Resque filters by iterating too).
    """
    client = get_redis()
    name = key(failure.FAILED)
    if not class_name:
        total = client.llen(name)
        high = total - 1 - start
        if high < 0:
            return [], total
        low = max(high - size + 1, 0)
        raws = client.lrange(name, low, high)
        rows = [describe(low + i, raw) for i, raw in enumerate(raws) if raw != ""]
        rows.reverse()
        return rows, total
    matched = 0
    rows: list[dict] = []
    high = client.llen(name) - 1
    while high >= 0:
        low = max(high - _BATCH + 1, 0)
        raws = client.lrange(name, low, high)
        for offset in range(len(raws) - 1, -1, -1):
            raw = raws[offset]
            if raw == "" or _class_of(raw) != class_name:
                continue
            if start <= matched < start + size:
                rows.append(describe(low + offset, raw))
            matched += 1
        high = low - 1
    return rows, matched


def _class_of(raw: str) -> str | None:
    item, ok = decode_json(raw)
    if not ok or not isinstance(item, dict):
        return None
    return describe_payload(item.get("payload"))["class"]


def lookup(index: int, digest: str) -> dict[str, Any] | None:
    """The entry at ``index`` if it still has ``digest``, else None."""
    raw = get_redis().lindex(key(failure.FAILED), index)
    if raw is None or raw == "" or entry_digest(raw) != digest:
        return None
    return describe(index, raw)


def _transact(index: int, digest: str, action: Callable[[Any, str], None]) -> str:
    client = get_redis()
    name = key(failure.FAILED)
    for _attempt in range(20):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(name)
                raw = pipe.lindex(name, index)
                if raw is None or raw == "" or entry_digest(raw) != digest:
                    raise EntryMoved(f"failure #{index} is no longer the entry shown")
                pipe.multi()
                action(pipe, raw)
                pipe.execute()
                return raw
            except redis_lib.WatchError:
                continue  # the list changed (a new failure pushed); look again
    raise EntryMoved(f"failure #{index}: the failed list kept changing; try again")


def retry(index: int, digest: str) -> dict[str, Any]:
    """Resque's ``requeue``: stamp ``retried_at`` (last key) and push ``class``/``args`` to
    the entry's queue; the entry stays in the list."""
    result: dict[str, Any] = {}

    def action(pipe, raw: str) -> None:
        item, ok = decode_json(raw)
        payload = item.get("payload") if ok and isinstance(item, dict) else None
        if not isinstance(payload, dict) or not isinstance(payload.get("class"), str):
            raise ValueError(f"failure #{index} has no job to retry")
        queue = item.get("queue")
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"failure #{index} has no queue to retry on")
        item.pop("retried_at", None)
        item["retried_at"] = wire.failed_at()
        args = payload.get("args")
        pipe.lset(key(failure.FAILED), index, wire.dumps(item))
        pipe.sadd(key("queues"), queue)
        pipe.rpush(
            key("queue", queue),
            wire.job_payload(payload["class"], args if isinstance(args, list) else []),
        )
        result.update(queue=queue, job_class=payload["class"])

    _transact(index, digest, action)
    return result


def remove(index: int, digest: str) -> None:
    """Resque's ``remove``: ``LSET failed i ""`` then ``LREM failed 1 ""``, atomically."""

    def action(pipe, _raw: str) -> None:
        pipe.lset(key(failure.FAILED), index, "")
        pipe.lrem(key(failure.FAILED), 1, "")

    _transact(index, digest, action)


def class_names_on(rows: list[dict]) -> list[str]:
    return sorted({row["class"] for row in rows if row["class"]})
