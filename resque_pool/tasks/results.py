"""Task results in Redis: one JSON record per result, and an index for the admin.

``<ns>:task-result:<id>`` holds the record (a JSON object, below). It has no expiry while
the task waits or runs (a deferred task keeps its record until it has run) and expires
``RESQUE_TASK_RESULT_TTL`` seconds after the task finished. ``<ns>:task-results`` is a
sorted set of ids scored by when each record expires (``+inf`` while unfinished), so the
admin lists waiting and running tasks first, then the most recently finished, and drops
ids whose record has expired.

A record::

    {"id": "...", "task": "myapp.tasks.add", "backend": "default", "queue_name": "default",
     "priority": 0, "run_after": null, "queue": "default", "args": [1, 2], "kwargs": {},
     "status": "SUCCESSFUL", "enqueued_at": "2026-11-24T18:00:00.123456+00:00",
     "started_at": ..., "finished_at": ..., "last_attempted_at": ...,
     "errors": [{"exception_class_path": "builtins.ValueError", "traceback": "..."}],
     "worker_ids": ["host:4242:default"], "return_value": 3}
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

import redis as redis_lib

from resque_pool.conf import settings
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key

FINISHED = ("SUCCESSFUL", "FAILED")


def record_key(result_id: str) -> str:
    return key("task-result", result_id)


def index_key() -> str:
    return key("task-results")


def encode_time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def decode_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def ttl() -> int:
    return int(settings.RESQUE_TASK_RESULT_TTL)


def save(record: dict[str, Any], pipe: redis_lib.client.Pipeline | None = None) -> None:
    """Write ``record``: without expiry until its status is finished, then with the TTL
    counted from now (the moment it finished)."""
    own = pipe is None
    if pipe is None:
        pipe = get_redis().pipeline(transaction=True)
    text = wire.dumps(record)
    if record.get("status") in FINISHED:
        seconds = ttl()
        pipe.set(record_key(record["id"]), text, ex=seconds)
        pipe.zadd(index_key(), {record["id"]: time.time() + seconds})
    else:
        pipe.set(record_key(record["id"]), text)  # SET drops any expiry an earlier run left
        pipe.zadd(index_key(), {record["id"]: math.inf})
    if own:
        pipe.execute()


def load(result_id: str) -> dict[str, Any] | None:
    return _record(get_redis().get(record_key(result_id)))


def _record(text: str | None) -> dict[str, Any] | None:
    """The record stored as ``text``; None when it is gone or not a JSON object."""
    if text is None:
        return None
    try:
        record = wire.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def count() -> int:
    """How many results the index holds, after dropping ids whose record has expired."""
    client = get_redis()
    client.zremrangebyscore(index_key(), "-inf", time.time())
    return client.zcard(index_key())


def page(start: int, size: int) -> list[dict[str, Any]]:
    """Records for the admin: unfinished first, then the latest finished."""
    client = get_redis()
    ids = client.zrevrange(index_key(), start, start + size - 1)
    texts = client.mget([record_key(i) for i in ids]) if ids else []
    records, gone = [], []
    for result_id, text in zip(ids, texts, strict=True):
        record = _record(text)
        if record is not None:
            records.append(record)
        else:
            gone.append(result_id)
    if gone:
        client.zrem(index_key(), *gone)
    return records


def expires_in(result_id: str) -> int | None:
    """Seconds until the record expires; None while it has no expiry (or is gone)."""
    seconds = get_redis().ttl(record_key(result_id))
    return seconds if seconds >= 0 else None
