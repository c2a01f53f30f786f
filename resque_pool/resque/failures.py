"""The failed list, as Resque's ``Failure::Redis`` backend writes and edits it.

Failure ids are list indexes, exactly as in Resque and resque-web. Reads page through the
list with ``LRANGE``; nothing here loads the whole list except ``requeue_all`` and the
class/queue filters, which Resque also implements by iterating.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import redis as redis_lib

from resque_pool.errors import FailureMoved, FailureNotFound, exception_name
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key

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


def each() -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, entry)`` in list order, read in batches."""
    for index, raw in _scan(newest_first=False):
        item = _decode(raw)
        if item is not None:
            yield index, item


def entry_digest(raw: str) -> str:
    """A short fingerprint of an entry's stored text, to tell it apart from whatever else
    may sit at its index later (ids are indexes and the list shifts on removal)."""
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def raw_page(
    start: int, size: int, newest_first: bool = True, class_name: str | None = None
) -> tuple[list[tuple[int, str]], int]:
    """One page of ``(index, stored text)`` and the total matching; newest first by default.

    Without a class filter this reads only the page's slice (``LLEN`` + one ``LRANGE``).
    With one, the list is scanned in batches (Resque filters by iterating too), keeping only
    the requested slice in memory. Blank entries (a removal in progress) are skipped.
    """
    client = get_redis()
    name = key(FAILED)
    if class_name is None:
        total = client.llen(name)
        if newest_first:
            high = total - 1 - start
            if high < 0:
                return [], total
            low = max(high - size + 1, 0)
            rows = [(low + i, raw) for i, raw in enumerate(client.lrange(name, low, high))]
            rows.reverse()
        else:
            raws = client.lrange(name, start, start + size - 1)
            rows = [(start + i, raw) for i, raw in enumerate(raws)]
        return [(i, raw) for i, raw in rows if raw != ""], total
    matched = 0
    rows = []
    for index, raw in _scan(newest_first):
        if job_class_of(_decode(raw)) != class_name:
            continue
        if start <= matched < start + size:
            rows.append((index, raw))
        matched += 1
    return rows, matched


def page(
    start: int, size: int, newest_first: bool = True, class_name: str | None = None
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Like ``raw_page`` with each entry decoded."""
    rows, total = raw_page(start, size, newest_first, class_name)
    return [(index, _decode(raw)) for index, raw in rows if raw != ""], total


def _scan(newest_first: bool) -> Iterator[tuple[int, str]]:
    """``(index, stored text)`` over the whole list in batches, either direction."""
    client = get_redis()
    name = key(FAILED)
    if not newest_first:
        index = 0
        while raws := client.lrange(name, index, index + _BATCH - 1):
            for offset, raw in enumerate(raws):
                if raw != "":
                    yield index + offset, raw
            index += len(raws)
        return
    high = client.llen(name) - 1
    while high >= 0:
        low = max(high - _BATCH + 1, 0)
        raws = client.lrange(name, low, high)
        for offset in range(len(raws) - 1, -1, -1):
            if raws[offset] != "":
                yield low + offset, raws[offset]
        high = low - 1


def job_class_of(item: dict[str, Any] | None) -> str | None:
    """The job class an entry is about; ActiveJob's wrapper shows the wrapped job class, as
    resque-web does."""
    payload = (item or {}).get("payload")
    if isinstance(payload, dict):
        name = payload.get("class")
        if name == "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper":
            args = payload.get("args")
            if isinstance(args, list) and args and isinstance(args[0], dict):
                return args[0].get("job_class", name)
        return name if isinstance(name, str) else None
    return None


def _edit(index: int, digest: str | None, action: Callable[[Any, str], None]) -> str:
    """Run ``action(pipeline, stored_text)`` on the entry at ``index`` atomically, after
    checking it is there (and still has ``digest`` when one is given)."""
    client = get_redis()
    name = key(FAILED)
    for _attempt in range(20):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(name)
                raw = pipe.lindex(name, index)
                if raw is None or raw == "":
                    raise FailureNotFound(f"no failure at index {index}")
                if digest is not None and entry_digest(raw) != digest:
                    raise FailureMoved(f"failure #{index} is no longer the entry shown")
                pipe.multi()
                action(pipe, raw)
                pipe.execute()
                return raw
            except redis_lib.WatchError:
                continue  # the list changed under us (a new failure pushed); look again
    raise FailureMoved(f"failure #{index}: the failed list kept changing; try again")


def requeue(index: int, digest: str | None = None, queue: str | None = None) -> dict[str, Any]:
    """Push the job again and stamp the entry with ``retried_at`` (it stays in the list).

    Like Resque, only ``class`` and ``args`` are pushed and enqueue hooks do not run. With
    ``digest``, nothing happens unless the entry at ``index`` is still that one.
    """
    result: dict[str, Any] = {}

    def action(pipe, raw: str) -> None:
        item = _decode(raw) or {}
        payload = item.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("class"), str):
            raise ValueError(f"failure {index} has no job to retry (payload {payload!r})")
        args = payload.get("args", [])
        if not isinstance(args, list):
            raise ValueError(f"failure {index} has args that are not a list: {args!r}")
        target = queue or item.get("queue")
        if not isinstance(target, str) or not target:
            raise ValueError(f"failure {index} has no queue to retry on")
        item.pop("retried_at", None)  # a second retry moves the stamp back to the end
        item["retried_at"] = wire.failed_at()
        pipe.lset(key(FAILED), index, wire.dumps(item))
        pipe.sadd(key("queues"), target)
        pipe.rpush(key("queue", target), wire.job_payload(payload["class"], args))
        result.update(item)

    _edit(index, digest, action)
    return result


def remove(index: int, digest: str | None = None) -> None:
    """``LSET failed i ""`` then ``LREM failed 1 ""``, as Resque removes one entry, in one
    transaction; with ``digest`` only if the entry at ``index`` is still that one."""

    def action(pipe, _raw: str) -> None:
        pipe.lset(key(FAILED), index, "")
        pipe.lrem(key(FAILED), 1, "")

    _edit(index, digest, action)


def requeue_all() -> int:
    """Requeue every entry (retried ones included, as Resque does); returns how many.

    Requeueing only rewrites entries in place, so indexes never shift while this walks the
    list batch by batch."""
    return _requeue_where(lambda item: True)


def requeue_queue(queue: str) -> int:
    return _requeue_where(lambda item: item.get("queue") == queue)


def _requeue_where(predicate: Callable[[dict[str, Any]], bool]) -> int:
    done = 0
    for index, item in each():
        if predicate(item) and _retryable(item):
            requeue(index)
            done += 1
    return done


def _retryable(item: dict[str, Any]) -> bool:
    payload = item.get("payload")
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("class"), str)
        and isinstance(payload.get("args", []), list)
        and bool(item.get("queue"))
    )


def remove_queue(queue: str) -> int:
    return _remove_where(lambda item: item.get("queue") == queue)


def clear() -> None:
    get_redis().delete(key(FAILED))


def clear_retried() -> int:
    """Remove every entry that carries ``retried_at``; returns how many."""
    return _remove_where(lambda item: bool(item.get("retried_at")))


def _remove_where(predicate: Callable[[dict[str, Any]], bool]) -> int:
    """Blank matching entries with ``LSET`` (which never shifts an index), then drop the
    blanks with one ``LREM``; reads the list batch by batch."""
    client = get_redis()
    removed = 0
    for index, item in each():
        if predicate(item):
            client.lset(key(FAILED), index, "")
            removed += 1
    if removed:
        client.lrem(key(FAILED), 0, "")
    return removed
