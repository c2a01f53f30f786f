"""The failed list, as Resque's ``Failure::Redis`` backend writes and edits it.

Failure ids are list indexes, exactly as in Resque and resque-web. Reads page through the
list with ``LRANGE``; the filters (class, queue) scan it in batches, as Resque iterates.
Editing (retry, remove, the bulk operations) is in ``edits.py``, beside this module.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from resque_pool.errors import FailureNotFound, exception_name
from resque_pool.resque import records, wire
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
    item, ok = records.json_or_text(raw)
    if not ok:
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


@dataclass(frozen=True)
class Selection:
    """The failures a filter selects: by job class (ActiveJob's wrapper shows the wrapped
    class, as resque-web does), by queue, by whether they were retried; empty = all."""

    class_name: str | None = None
    queue: str | None = None
    retried: bool | None = None

    @property
    def everything(self) -> bool:
        return self.class_name is None and self.queue is None and self.retried is None

    def matches(self, item: dict[str, Any] | None) -> bool:
        if item is None:
            return False
        if self.class_name is not None and job_class_of(item) != self.class_name:
            return False
        if self.queue is not None and item.get("queue") != self.queue:
            return False
        return self.retried is None or bool(item.get("retried_at")) == self.retried

    def describe(self) -> str:
        """`` of class X on queue Y`` (or nothing when it selects every entry)."""
        parts = [f" of class {self.class_name}" if self.class_name is not None else ""]
        parts.append(f" on queue {self.queue}" if self.queue is not None else "")
        if self.retried is not None:
            parts.append(" already retried" if self.retried else " not retried yet")
        return "".join(parts)


def raw_page(
    start: int,
    size: int,
    newest_first: bool = True,
    class_name: str | None = None,
    *,
    selection: Selection | None = None,
) -> tuple[list[tuple[int, str]], int]:
    """One page of ``(index, stored text)`` and the total matching; newest first by default.

    Without a filter this reads only the page's slice (``LLEN`` + one ``LRANGE``). With one,
    the list is scanned in batches (Resque filters by iterating too), keeping only the
    requested slice in memory. Blank entries (a removal in progress) are skipped.
    """
    selection = selection or Selection(class_name=class_name)
    client = get_redis()
    name = key(FAILED)
    if selection.everything:
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
        if not selection.matches(_decode(raw)):
            continue
        if start <= matched < start + size:
            rows.append((index, raw))
        matched += 1
    return rows, matched


def count_selected(selection: Selection) -> int:
    """How many entries ``selection`` picks: ``LLEN`` for all, else one scan."""
    if selection.everything:
        return count()
    return sum(1 for _index, raw in _scan(True) if selection.matches(_decode(raw)))


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
    """The job class an entry is about (a wrapper's wrapped class, as resque-web shows)."""
    return records.job_class((item or {}).get("payload"))
