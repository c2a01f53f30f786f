"""Moving due delayed items to their queues, one atomic script per item.

The script checks that the head of ``delayed:<ts>`` is still the item this mover read,
pops it, pushes the queue entry, fixes the reverse index and drops the timestamp from
``delayed_queue_schedule`` once its list is empty. Because the check and the move are one
step, any number of movers (our schedulers, a Ruby resque-scheduler) can run side by side:
an item is moved by exactly one of them, and a mover killed between two scripts leaves
every item either still delayed or already queued.

The queue entry is cut from the item's own bytes, never re-encoded: an item ending in
``,"queue":"<q>"}`` (how resque-scheduler and we write them) becomes the same text
without that member, ``{"class":…,"args":[…]}``, exactly what Resque pushes; any other
item is pushed as it is (workers ignore the extra member).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.delayed import SCHEDULE, index_key, timestamp_key, timestamp_member
from resque_pool.resque.jobs import registry
from resque_pool.resque.wakeup import wake_quietly
from resque_pool.scheduler import clock

logger = logging.getLogger(__name__)

# KEYS: delayed:<ts>, timestamps:<item>, queue:<q>, queues, delayed_queue_schedule
# ARGV: item, queue entry, queue name, ts, "delayed:<ts>" (the index's member: no namespace).
# Returns 1 when moved, 0 when the head is not that item (another mover took it).
_MOVE = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.call('SREM', KEYS[2], ARGV[5])
end
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[2])
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[5], ARGV[4])
end
return 1
"""

# KEYS: delayed:<ts>, delayed_queue_schedule; ARGV: ts.  resque-scheduler's
# clean_up_timestamp: an emptied list (remove_delayed leaves them) leaves the schedule.
_CLEAN = """
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

# The admin's "enqueue now" and "delete" of one item anywhere in delayed:<ts>.
# KEYS: delayed:<ts>, timestamps:<item>, queue:<q>, queues, delayed_queue_schedule
# ARGV: item, queue entry ("" to delete), queue name, ts, "delayed:<ts>".
# Returns 1 when the item was there (and was moved or deleted), else 0.
_TAKE_ONE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.call('SREM', KEYS[2], ARGV[5])
end
if ARGV[2] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[3])
  redis.call('RPUSH', KEYS[3], ARGV[2])
end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[5], ARGV[4])
end
return 1
"""

BATCH = 100


@dataclass
class MoveResult:
    moved: int = 0
    # The time the move was made at (Redis's clock unless given), seconds since the epoch.
    now: float = 0.0
    # timestamps holding items this process cannot route (no queue, not JSON): left for
    # another scheduler (Ruby knows its own classes' queues); logged once each.
    stuck: set[int] = field(default_factory=set)


_reported: set[tuple[int, str]] = set()


def queue_entry(item: str) -> tuple[str, str] | None:
    """(queue, entry to push) for a delayed item, or None when it cannot be routed here."""
    try:
        payload = wire.loads(item)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("class"), str):
        return None
    queue = payload.get("queue")
    if not isinstance(queue, str) or not queue:
        # Old resque-scheduler items carry no queue: Resque.queue_from_class, our registry.
        definition = registry.get(payload["class"])
        if definition is None or not definition.queue:
            return None
        return definition.queue, item
    suffix = ',"queue":' + wire.dumps(queue) + "}"
    if item.endswith(suffix) and item.startswith("{"):
        return queue, item[: -len(suffix)] + "}"
    return queue, item


def due_timestamps(now: float | None = None, limit: int = BATCH) -> list[int]:
    """Timestamps whose score is not after ``now`` (default: Redis's clock), earliest
    first."""
    client = get_redis()
    if now is None:
        now = clock.redis_time(client)
    stamps = client.zrangebyscore(key(SCHEDULE), "-inf", int(now), start=0, num=limit)
    return [int(stamp) for stamp in stamps]


def earliest_due() -> tuple[float, float | None]:
    """(Redis's clock now, when the earliest delayed item is due or None), in one round
    trip: what an idle scheduler asks before it sleeps."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.time()
    pipe.zrange(key(SCHEDULE), 0, 0, withscores=True)
    server, first = pipe.execute()
    return clock.seconds(server), (float(first[0][1]) if first else None)


def next_after(now: float) -> float | None:
    """When the first item due after ``now`` is (items left due at ``now`` are ones this
    process cannot route: retried at the next poll, not in a loop)."""
    found = get_redis().zrangebyscore(
        key(SCHEDULE), f"({int(now)}", "+inf", start=0, num=1, withscores=True
    )
    return float(found[0][1]) if found else None


def move_due(now: float | None = None, max_items: int | None = None) -> MoveResult:
    """Move every item due at ``now`` (default: this second on Redis's clock, the one
    every scheduler shares); at most ``max_items``.

    Each round reads the heads of up to ``BATCH`` due times in one pipeline and runs the
    move script for each item read in a second one: two round trips for up to
    ``BATCH * BATCH`` items, whether they share one time or each has its own.
    """
    client = get_redis()
    if now is None:
        now = clock.redis_time(client)
    result = MoveResult(now=now)
    move = client.register_script(_MOVE)
    clean = client.register_script(_CLEAN)
    schedule, queues = key(SCHEDULE), key("queues")
    while max_items is None or result.moved < max_items:
        stamps = [
            stamp
            for stamp in due_timestamps(now, BATCH + len(result.stuck))
            if stamp not in result.stuck
        ]
        if not stamps:
            break
        reads = client.pipeline(transaction=False)
        for stamp in stamps:
            reads.lrange(timestamp_key(stamp), 0, BATCH - 1)
        budget = None if max_items is None else max_items - result.moved
        writes = client.pipeline(transaction=False)
        moves: list[bool] = []  # which replies are moves (the others are clean-ups)
        targets: list[str] = []  # the queue of each move, in order
        for stamp, items in zip(stamps, reads.execute(), strict=True):
            list_key = timestamp_key(stamp)
            if not items:
                clean(keys=[list_key, schedule], args=[stamp], client=writes)
                moves.append(False)
                continue
            for item in items:
                if budget is not None and budget <= 0:
                    break
                routed = queue_entry(item)
                if routed is None:
                    _report_stuck(stamp, item)
                    result.stuck.add(stamp)
                    break
                queue, entry = routed
                move(
                    keys=[list_key, index_key(item), key("queue", queue), queues, schedule],
                    args=[item, entry, queue, stamp, timestamp_member(stamp)],
                    client=writes,
                )
                moves.append(True)
                targets.append(queue)
                if budget is not None:
                    budget -= 1
        if not moves:
            break
        replies = writes.execute()
        moved = [reply for reply, is_move in zip(replies, moves, strict=True) if is_move]
        result.moved += sum(moved)
        # Idle workers of those queues take the jobs now rather than at their next poll.
        wake_quietly(queue for queue, done in zip(targets, moved, strict=True) if done)
    return result


def _report_stuck(stamp: int, item: str) -> None:
    if (stamp, item) in _reported:
        return
    _reported.add((stamp, item))
    logger.warning(
        "delayed item at %s cannot be routed here (no queue and no registered job, or not "
        "JSON); left for another scheduler: %s",
        stamp,
        item[:200],
    )


def take_one(stamp: int, item: str, enqueue: bool) -> bool:
    """Enqueue now (``enqueue=True``) or delete one copy of ``item`` scheduled at
    ``stamp``, atomically; False when it is no longer there (moved or removed meanwhile).
    An item that cannot be routed here cannot be enqueued: ValueError."""
    routed = queue_entry(item)
    if enqueue and routed is None:
        raise ValueError("this item names no queue and no job registered here")
    queue, entry = routed if (enqueue and routed) else ("", "")
    client = get_redis()
    done = client.register_script(_TAKE_ONE)(
        keys=[
            timestamp_key(stamp),
            index_key(item),
            key("queue", queue or "-"),
            key("queues"),
            key(SCHEDULE),
        ],
        args=[item, entry, queue, stamp, timestamp_member(stamp)],
    )
    if done and enqueue:
        wake_quietly([queue])
    return bool(done)
