"""What the dashboard reads from Redis: queues, workers and Resque.info (pools: pools.py).

Everything here reads Redis as Ruby's Resque and resque-web leave it (see
``docs/wire-format.md``; Resque's ``lib/resque.rb``, ``info``, and ``lib/resque/server.rb``)
and must survive data written by other clients: worker ids without two colons, unparsable
heartbeats and ``started`` values, "working on" values that are not JSON, payloads that are
not objects. Nothing here raises on such data; the odd value is shown as it is and flagged.

Lists are read a page at a time with ``LRANGE``; per-worker values come from a few ``MGET``
calls and one ``HGETALL``, never one round trip per row.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from resque_pool.resque import control, records, wire
from resque_pool.resque.connection import get_redis, key, namespace

# -- small helpers -------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def age_seconds(moment: datetime | None, reference: datetime | None = None) -> int | None:
    if moment is None:
        return None
    return int(((reference or now()) - moment).total_seconds())


def to_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def decode_json(raw: str | None) -> tuple[Any, bool]:
    """``(value, ok)``: the decoded JSON, or the raw text and False (None stays None)."""
    return (None, True) if raw is None else records.json_or_text(raw)


def pretty(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return object.__repr__(value) if isinstance(value, list | dict) else repr(value)


def describe_payload(payload: Any) -> dict[str, Any]:
    """Class and args of a job payload, as resque-web shows them (wrappers unwrapped)."""
    if not isinstance(payload, dict):
        return {"class": None, "args": payload, "args_text": pretty(payload), "valid": False}
    name = payload.get("class")
    args = payload.get("args")
    shown = records.job_class(payload)
    return {
        "class": shown if shown is not None else (None if name is None else str(name)),
        "args": args,
        "args_text": pretty(args),
        "valid": isinstance(name, str),
    }


def worker_id_parts(worker_id: str) -> dict[str, Any]:
    """A worker id's parts for the templates (see ``records.parse_worker_id``)."""
    parsed = records.parse_worker_id(worker_id)
    return {
        "host": parsed.host,
        "pid": parsed.pid,
        "queues": list(parsed.queues),
        "well_formed": parsed.well_formed,
    }


def redis_location() -> str:
    """``host:port/db`` of the job Redis, never with a password."""
    kwargs = get_redis().connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"{kwargs['path']}/{kwargs.get('db', 0)}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def environment() -> str:
    """``Resque.info[:environment]``: ``RAILS_ENV || RACK_ENV || "development"`` (a pool's
    own environment, resolved RACK_ENV first as resque-pool does, is on the pool list)."""
    return os.environ.get("RAILS_ENV") or os.environ.get("RACK_ENV") or "development"


# -- queues -------------------------------------------------------------------------------


def queue_names() -> list[str]:
    return sorted(get_redis().smembers(key("queues")))


def queues() -> list[dict[str, Any]]:
    """Every queue in the ``queues`` set, sorted by name, with its ``LLEN`` (one pipeline)."""
    names = queue_names()
    if not names:
        return []
    pipe = get_redis().pipeline(transaction=False)
    for name in names:
        pipe.llen(key("queue", name))
    return [{"name": n, "size": size} for n, size in zip(names, pipe.execute(), strict=True)]


def failed_queues() -> list[dict[str, Any]]:
    """``<q>_failed`` lists of Resque's RedisMultiQueue failure backend (Ruby workers may use
    it); shown as resque-web shows them, read-only."""
    client = get_redis()
    names = sorted(client.smembers(key("failed_queues")))
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(key(name))
    return [{"name": n, "size": size} for n, size in zip(names, pipe.execute(), strict=True)]


def queue_key(name: str) -> str:
    return key("queue", name)


def queue_length(name: str) -> int:
    return get_redis().llen(queue_key(name))


def describe_jobs(rows: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Pending jobs ``(position, stored text)`` as the queue page shows them."""
    jobs = []
    for position, raw in rows:
        payload, ok = decode_json(raw)
        described = describe_payload(payload) if ok else describe_payload(None)
        jobs.append({"position": position, "raw": raw, "decoded": ok, **described})
    return jobs


def queue_exists(name: str) -> bool:
    client = get_redis()
    return bool(client.sismember(key("queues"), name) or client.exists(key("queue", name)))


def remove_queue(name: str) -> int:
    """Resque's ``remove_queue``: ``SREM queues <q>`` + ``DEL queue:<q>``; returns the number
    of jobs dropped."""
    pipe = get_redis().pipeline(transaction=True)
    pipe.llen(key("queue", name))
    pipe.srem(key("queues"), name)
    pipe.delete(key("queue", name))
    size, _removed, _deleted = pipe.execute()
    return size


# -- workers ------------------------------------------------------------------------------


def worker_ids() -> list[str]:
    return sorted(get_redis().smembers(key("workers")))


def worker_registered(worker_id: str) -> bool:
    return bool(get_redis().sismember(key("workers"), worker_id))


def registered(ids: list[str]) -> set[str]:
    """Which of ``ids`` are in the ``workers`` set (one pipeline)."""
    ids = [i for i in ids if i]
    if not ids:
        return set()
    pipe = get_redis().pipeline(transaction=False)
    for worker_id in ids:
        pipe.sismember(key("workers"), worker_id)
    return {i for i, member in zip(ids, pipe.execute(), strict=True) if member}


def workers(ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Every registered worker (or the given ids) with what it is doing, sorted by id.

    Five round trips whatever the number of workers: SMEMBERS, HGETALL heartbeats, and one
    pipeline of four MGETs (working-on, started, processed, failed).
    """
    client = get_redis()
    if ids is None:
        ids = worker_ids()
    if not ids:
        return []
    heartbeats = client.hgetall(key("workers:heartbeat"))
    pipe = client.pipeline(transaction=False)
    pipe.mget([key("worker", i) for i in ids])
    pipe.mget([key("worker", i, "started") for i in ids])
    pipe.mget([key("stat", "processed", i) for i in ids])
    pipe.mget([key("stat", "failed", i) for i in ids])
    working, started, processed, failed = pipe.execute()
    reference = now()
    result = []
    for index, worker_id in enumerate(ids):
        info = worker_id_parts(worker_id)
        heartbeat = heartbeats.get(worker_id)
        heartbeat_at = wire.parse_time(heartbeat) if heartbeat else None
        started_raw = started[index]
        started_at = wire.parse_time(started_raw) if started_raw else None
        result.append(
            {
                "id": worker_id,
                **info,
                "started": started_raw,
                "started_at": started_at,
                "started_age": age_seconds(started_at, reference),
                "heartbeat": heartbeat,
                "heartbeat_at": heartbeat_at,
                "heartbeat_age": age_seconds(heartbeat_at, reference),
                "heartbeat_bad": bool(heartbeat) and heartbeat_at is None,
                "processed": to_int(processed[index]),
                "failed": to_int(failed[index]),
                "job": working_on(working[index], reference),
            }
        )
    return result


def working_on(raw: str | None, reference: datetime | None = None) -> dict[str, Any] | None:
    """The decoded ``worker:<id>`` value (``queue``, ``run_at``, ``payload``), or None when
    the worker is idle; a value that is not a JSON object is kept as raw text."""
    if not raw:
        return None
    value, ok = decode_json(raw)
    if not ok or not isinstance(value, dict):
        return {
            "queue": None,
            "run_at": None,
            "run_at_time": None,
            "since_seconds": None,
            "raw": raw,
            "class": None,
            "args": None,
            "args_text": str(raw),
            "valid": False,
        }
    run_at = value.get("run_at")
    run_at_time = wire.parse_time(run_at) if isinstance(run_at, str) else None
    return {
        "queue": value.get("queue"),
        "run_at": run_at,
        "run_at_time": run_at_time,
        "since_seconds": age_seconds(run_at_time, reference),
        "raw": raw,
        **describe_payload(value.get("payload")),
    }


def working(all_workers: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Workers busy with a job, sorted by the ``run_at`` string as resque-web sorts them."""
    busy = [w for w in (all_workers if all_workers is not None else workers()) if w["job"]]
    return sorted(busy, key=lambda w: (str(w["job"].get("run_at") or ""), w["id"]))


def hosts(all_workers: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted(Counter(w["host"] for w in all_workers).items())


def working_count(ids: list[str]) -> int:
    if not ids:
        return 0
    return sum(1 for raw in get_redis().mget([key("worker", i) for i in ids]) if raw)


def workers_paused() -> bool:
    """Whether ``pause-all-workers`` pauses every worker (ours and Ruby's) now."""
    return records.pauses_workers(get_redis().get(key(records.PAUSE_ALL_WORKERS)))


def pause_workers(paused: bool) -> None:
    """``SET pause-all-workers true`` (what Ruby's workers honour too), or delete it, and
    tell the pools, whose idle workers hear it within a second (``resque/control.py``)."""
    if paused:
        get_redis().set(key(records.PAUSE_ALL_WORKERS), "true")
    else:
        get_redis().delete(key(records.PAUSE_ALL_WORKERS))
    control.announce(control.PAUSE)


# -- Resque.info and stats ----------------------------------------------------------------


def info(
    queue_list: list[dict[str, Any]] | None = None,
    worker_list: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``Resque.info``: pending, processed, queues, workers, working, failed, servers,
    environment (``failed`` is ``LLEN failed``, as in Resque).

    A page that already read ``queues()`` or ``workers()`` passes them in, so nothing is
    read twice on a page that refreshes every few seconds.
    """
    if queue_list is None:
        queue_list = queues()
    if worker_list is None:
        ids = worker_ids()
        worker_total, working = len(ids), working_count(ids)
    else:
        worker_total = len(worker_list)
        working = sum(1 for worker in worker_list if worker["job"])
    pipe = get_redis().pipeline(transaction=False)
    pipe.get(key("stat", "processed"))
    pipe.get(key("stat", "failed"))
    pipe.llen(key("failed"))
    processed, stat_failed, failed_count = pipe.execute()
    return {
        "pending": sum(queue["size"] for queue in queue_list),
        "processed": to_int(processed),
        "queues": len(queue_list),
        "workers": worker_total,
        "working": working,
        "failed": failed_count,
        "failed_total": to_int(stat_failed),
        "servers": [f"redis://{redis_location()}/{namespace()}"],
        "environment": environment(),
    }


def redis_info() -> list[tuple[str, Any]]:
    """Redis ``INFO`` as sorted ``(name, value)`` pairs (nested values flattened)."""
    flat: list[tuple[str, Any]] = []
    for name, value in get_redis().info().items():
        if isinstance(value, dict):
            flat.append((name, ", ".join(f"{k}={v}" for k, v in value.items())))
        else:
            flat.append((name, value))
    return sorted(flat)
