"""The failed list, as Resque's ``Failure::Redis`` backend writes and edits it.

Failure ids are list indexes, exactly as in Resque and resque-web. Reads page through the
list with ``LRANGE``; nothing here loads the whole list except ``requeue_all`` and the
class/queue filters, which Resque also implements by iterating.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any

from . import wire
from .connection import get_redis, key
from .errors import FailureNotFound, exception_name

FAILED = "failed"
_BATCH = 500


def backtrace_of(exception: BaseException) -> list[str]:
    """Frames in Ruby's ``file:line:in `method'`` shape, innermost last, without our own
    frames (Resque cuts its own ``job.rb`` frames the same way)."""
    if exception.__traceback__ is None:
        return []
    frames = [
        frame
        for frame in traceback.extract_tb(exception.__traceback__)
        if "/resque_pool/" not in frame.filename.replace("\\", "/")
    ]
    return [f"{frame.filename}:{frame.lineno}:in `{frame.name}'" for frame in frames]


def entry(
    exception: BaseException,
    worker_id: str,
    queue: str,
    payload: Any,
    backtrace: list[str] | None = None,
) -> dict[str, Any]:
    """A failure entry with Resque's key order."""
    return {
        "failed_at": wire.failed_at(),
        "payload": payload,
        "exception": exception_name(exception),
        "error": str(exception),
        "backtrace": backtrace if backtrace is not None else backtrace_of(exception),
        "worker": worker_id,
        "queue": queue,
    }


def create(
    exception: BaseException,
    worker_id: str,
    queue: str,
    payload: Any,
    backtrace: list[str] | None = None,
) -> None:
    """``RPUSH failed <entry>``; ``payload`` is the decoded payload, or the raw text when it
    was not JSON, so that nothing of a bad job is lost."""
    get_redis().rpush(
        key(FAILED), wire.dumps(entry(exception, worker_id, queue, payload, backtrace))
    )


def count() -> int:
    return get_redis().llen(key(FAILED))


def _decode(raw: str | None) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    try:
        item = wire.loads(raw)
    except ValueError:
        return {"payload": raw, "exception": "unreadable", "error": "entry is not JSON"}
    return item if isinstance(item, dict) else {"payload": item}


def all(offset: int = 0, limit: int = 1) -> list[dict[str, Any]]:  # noqa: A001 (Resque's name)
    """Entries ``offset .. offset+limit-1`` in list order (oldest first)."""
    if limit <= 0:
        return []
    raws = get_redis().lrange(key(FAILED), offset, offset + limit - 1)
    return [item for item in map(_decode, raws) if item is not None]


def get(index: int) -> dict[str, Any]:
    item = _decode(get_redis().lindex(key(FAILED), index))
    if item is None:
        raise FailureNotFound(f"no failure at index {index}")
    return item


def each(offset: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, entry)`` in list order, read in batches."""
    client = get_redis()
    index = offset
    while True:
        raws = client.lrange(key(FAILED), index, index + _BATCH - 1)
        if not raws:
            return
        for raw in raws:
            item = _decode(raw)
            if item is not None:
                yield index, item
            index += 1


def page(
    start: int, size: int, newest_first: bool = True, class_name: str | None = None
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """One page for a listing and the total matching; newest first by default.

    Without a class filter this reads only the page's slice with ``LRANGE``.
    """
    if class_name is None:
        total = count()
        if newest_first:
            high = total - 1 - start
            low = max(high - size + 1, 0)
            if high < 0:
                return [], total
            raws = get_redis().lrange(key(FAILED), low, high)
            rows = [(low + i, _decode(raw)) for i, raw in enumerate(raws)]
            rows.reverse()
        else:
            raws = get_redis().lrange(key(FAILED), start, start + size - 1)
            rows = [(start + i, _decode(raw)) for i, raw in enumerate(raws)]
        return [(i, item) for i, item in rows if item is not None], total
    matches = [(i, item) for i, item in each() if _class_of(item) == class_name]
    if newest_first:
        matches.reverse()
    return matches[start : start + size], len(matches)


def _class_of(item: dict[str, Any]) -> str | None:
    payload = item.get("payload")
    if isinstance(payload, dict):
        name = payload.get("class")
        if name == "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper":
            args = payload.get("args") or [{}]
            if isinstance(args[0], dict):
                return args[0].get("job_class", name)
        return name if isinstance(name, str) else None
    return None


def requeue(index: int, queue: str | None = None) -> dict[str, Any]:
    """Push the job again and stamp the entry with ``retried_at`` (it stays in the list).

    Like Resque, only ``class`` and ``args`` are pushed and enqueue hooks do not run.
    """
    item = get(index)
    payload = item.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("class"), str):
        raise ValueError(f"failure {index} has no job to retry (payload {payload!r})")
    target = queue or item.get("queue")
    if not target:
        raise ValueError(f"failure {index} has no queue to retry on")
    item["retried_at"] = wire.failed_at()
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    pipe.lset(key(FAILED), index, wire.dumps(item))
    pipe.sadd(key("queues"), target)
    pipe.rpush(key("queue", target), wire.job_payload(payload["class"], payload.get("args") or []))
    pipe.execute()
    return item


def remove(index: int) -> None:
    """``LSET failed i ""`` then ``LREM failed 1 ""``, as Resque removes one entry."""
    client = get_redis()
    if client.lindex(key(FAILED), index) is None:
        raise FailureNotFound(f"no failure at index {index}")
    client.lset(key(FAILED), index, "")
    client.lrem(key(FAILED), 1, "")


def requeue_all() -> int:
    """Requeue every entry (retried ones included, as Resque does); returns how many."""
    done = 0
    for index, item in list(each()):
        if isinstance(item.get("payload"), dict):
            requeue(index)
            done += 1
    return done


def requeue_queue(queue: str) -> int:
    done = 0
    for index, item in list(each()):
        if item.get("queue") == queue and isinstance(item.get("payload"), dict):
            requeue(index)
            done += 1
    return done


def remove_queue(queue: str) -> int:
    return _remove_where(lambda item: item.get("queue") == queue)


def clear() -> None:
    get_redis().delete(key(FAILED))


def clear_retried() -> int:
    """Remove every entry that carries ``retried_at``; returns how many."""
    return _remove_where(lambda item: bool(item.get("retried_at")))


def _remove_where(predicate) -> int:
    """Blank matching entries from the end backwards, then LREM the blanks, so indexes of
    entries still to visit never shift."""
    client = get_redis()
    removed = 0
    for index, item in reversed(list(each())):
        if predicate(item):
            client.lset(key(FAILED), index, "")
            removed += 1
    if removed:
        client.lrem(key(FAILED), 0, "")
    return removed
