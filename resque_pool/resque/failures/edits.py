"""Editing the failed list: retry and remove one entry, or everything a filter selects.

Failure ids are list indexes, so the entry at an index changes whenever an older one is
removed (by the dashboard, by resque-web, by another worker's clean-up). Every write here
is therefore checked against what was read: one Lua script compares each entry's SHA-1
with the text read, and only then sets, pushes and removes, atomically. A mismatch writes
nothing; the caller reads again and decides again. New failures appended meanwhile do not
disturb it (unlike ``WATCH``, which a busy list would keep invalidating).

The single-entry operations and the bulk ones share that check: a bulk operation is the
same edit applied batch by batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resque_pool.errors import FailureMoved, FailureNotFound
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.failures.entries import FAILED, Selection, _decode, entry_digest
from resque_pool.resque.wakeup import wake_quietly

_BATCH = 500
_ATTEMPTS = 50

# KEYS: the failed list, the queues set, then the queue lists pushed to.
# ARGV: n, then n triples (index, SHA-1 of the text read there, new text; "" blanks it);
#       m, then m triples (queue name, its list's position in KEYS, job payload);
#       how many blanks LREM drops afterwards (0: every one; -1: no LREM).
_CHECK_THEN_WRITE = """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local found = redis.call('LINDEX', KEYS[1], ARGV[2 + 3 * i])
  if not found or redis.sha1hex(found) ~= ARGV[3 + 3 * i] then
    return 0
  end
end
for i = 0, n - 1 do
  redis.call('LSET', KEYS[1], ARGV[2 + 3 * i], ARGV[4 + 3 * i])
end
local at = 2 + 3 * n
local m = tonumber(ARGV[at])
for j = 0, m - 1 do
  redis.call('SADD', KEYS[2], ARGV[at + 1 + 3 * j])
  redis.call('RPUSH', KEYS[tonumber(ARGV[at + 2 + 3 * j])], ARGV[at + 3 + 3 * j])
end
local blanks = tonumber(ARGV[at + 1 + 3 * m])
if blanks >= 0 then
  redis.call('LREM', KEYS[1], blanks, '')
end
return 1
"""


@dataclass
class Edit:
    """Writes to apply only if every entry edited still holds the text read."""

    entries: list[tuple[int, str, str]] = field(default_factory=list)  # index, read, new
    pushes: list[tuple[str, str]] = field(default_factory=list)  # queue, job payload
    blanks: int | None = None  # LREM count for the blanks left behind, None: no LREM


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()  # noqa: S324


def _apply(edit: Edit) -> bool:
    """Run ``edit`` atomically; False (and nothing written) if an entry changed."""
    client = get_redis()
    queue_keys = sorted({key("queue", queue) for queue, _payload in edit.pushes})
    args: list[Any] = [len(edit.entries)]
    for index, read, new in edit.entries:
        args += [index, _sha1(read), new]
    args.append(len(edit.pushes))
    for queue, payload in edit.pushes:
        args += [queue, 3 + queue_keys.index(key("queue", queue)), payload]
    args.append(-1 if edit.blanks is None else edit.blanks)
    script = client.register_script(_CHECK_THEN_WRITE)
    applied = bool(script(keys=[key(FAILED), key("queues"), *queue_keys], args=args))
    if applied:
        wake_quietly([queue for queue, _payload in edit.pushes])
    return applied


def _stamp(index: int, item: dict[str, Any], queue: str | None = None) -> tuple[str, str, str]:
    """Resque's ``requeue`` of ``item``: ``(new entry text, queue, job payload)``. Only
    ``class`` and ``args`` are pushed; the entry gets ``retried_at`` (last, once)."""
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
    return wire.dumps(item), target, wire.job_payload(payload["class"], args)


def _read_one(index: int, digest: str | None) -> str:
    raw = get_redis().lindex(key(FAILED), index)
    if raw is None or raw == "":
        raise FailureNotFound(f"no failure at index {index}")
    if digest is not None and entry_digest(raw) != digest:
        raise FailureMoved(f"failure #{index} is no longer the entry shown")
    return raw


def requeue(index: int, digest: str | None = None, queue: str | None = None) -> dict[str, Any]:
    """Push the job again and stamp the entry with ``retried_at`` (it stays in the list).

    Like Resque, only ``class`` and ``args`` are pushed and enqueue hooks do not run. With
    ``digest``, nothing happens unless the entry at ``index`` is still that one.
    """
    for _attempt in range(_ATTEMPTS):
        raw = _read_one(index, digest)
        item = _decode(raw) or {}
        stamped, target, job = _stamp(index, item, queue)
        if _apply(Edit([(index, raw, stamped)], [(target, job)])):
            return item
    raise FailureMoved(f"failure #{index}: the failed list kept changing; try again")


def remove(index: int, digest: str | None = None) -> None:
    """``LSET failed i ""`` then ``LREM failed 1 ""``, as Resque removes one entry, done
    atomically; with ``digest`` only if the entry at ``index`` is still that one."""
    for _attempt in range(_ATTEMPTS):
        raw = _read_one(index, digest)
        if _apply(Edit([(index, raw, "")], blanks=1)):
            return
    raise FailureMoved(f"failure #{index}: the failed list kept changing; try again")


def _each_batch(
    decide: Callable[[list[tuple[int, str]]], Edit], done: Callable[[Edit], None]
) -> int:
    """Walk the list newest to oldest, ``_BATCH`` entries at a time: read a batch, let
    ``decide`` build its edit, apply it (read again on a mismatch); returns how many
    entries were edited.

    Walking downwards keeps the rest of the walk valid whatever a batch removes: a removal
    shifts only newer entries, which are behind us, and new failures are appended. A
    removal by someone else shifts older entries down into the next batch, so an entry may
    be read twice but is never skipped; ``decide`` makes acting twice harmless.
    """
    client = get_redis()
    name = key(FAILED)
    edited = 0
    high = client.llen(name) - 1
    while high >= 0:
        low = max(high - _BATCH + 1, 0)
        for _attempt in range(_ATTEMPTS):
            raws = client.lrange(name, low, high)
            rows = [(low + i, raw) for i, raw in reversed(list(enumerate(raws))) if raw != ""]
            edit = decide(rows)
            if not edit.entries or _apply(edit):
                break
        else:
            raise FailureMoved("the failed list kept changing; try again")
        done(edit)
        edited += len(edit.entries)
        high = low - 1
    return edited


def requeue_selected(selection: Selection) -> int:
    """Requeue every entry ``selection`` picks that has a job and a queue (retried ones
    included, as Resque does); returns how many. An entry this call already retried is
    recognised by its new text and not retried twice."""
    written: set[str] = set()

    def decide(rows: list[tuple[int, str]]) -> Edit:
        edit = Edit()
        for index, raw in rows:
            item = _decode(raw)
            if entry_digest(raw) in written or not selection.matches(item):
                continue
            try:
                stamped, target, job = _stamp(index, dict(item or {}))
            except ValueError:
                continue  # nothing to retry (no job, no queue): left as it is
            edit.entries.append((index, raw, stamped))
            edit.pushes.append((target, job))
        return edit

    def done(edit: Edit) -> None:
        written.update(entry_digest(new) for _index, _read, new in edit.entries)

    return _each_batch(decide, done)


def remove_selected(selection: Selection) -> int:
    """Remove every entry ``selection`` picks; returns how many. Each batch blanks its
    entries and drops the blanks with ``LREM`` in the same checked write."""

    def decide(rows: list[tuple[int, str]]) -> Edit:
        edit = Edit(blanks=0)
        for index, raw in rows:
            if selection.matches(_decode(raw)):
                edit.entries.append((index, raw, ""))
        return edit

    return _each_batch(decide, lambda edit: None)


def requeue_all() -> int:
    """Requeue every entry (retried ones included, as Resque does); returns how many."""
    return requeue_selected(Selection())


def requeue_queue(queue: str) -> int:
    return requeue_selected(Selection(queue=queue))


def remove_queue(queue: str) -> int:
    return remove_selected(Selection(queue=queue))


def clear() -> None:
    """``DEL failed``, as Resque clears the list (``stat:failed`` keeps its value)."""
    get_redis().delete(key(FAILED))


def clear_retried() -> int:
    """Remove every entry that carries ``retried_at``; returns how many."""
    return remove_selected(Selection(retried=True))
