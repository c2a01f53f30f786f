"""Reading the whole fleet from Redis for one scrape, in two pipelined round trips.

1. ``TIME``, the ``queues``, ``workers`` and ``pools`` sets, Resque's stats, our per class
   hashes (``resque/job_metrics.py``), the queue-head hash and the delayed schedule;
2. the queues' lengths and head ages (``QUEUE_SCRIPT``, a thousand queues per call), the
   workers' in-flight records, the pools' states and job event counts, the lengths of the
   delayed timestamps' lists, and the removal of head records of queues that are gone.

Every key goes through ``key()``; only the queue script names several keys (the queues
and their head records), which a namespace with a hash tag keeps in one slot of a Redis
Cluster; the rest are single-key commands in a pipeline.

The age of the oldest waiting job: a Resque payload carries no enqueue time, and several
parts of the code rely on a job's exact bytes (skip-if-queued's ``LPOS``, the loss
policy's interruption counts keyed by the payload's SHA-1, the scheduler's mover and
requeues pushing the original bytes), so nothing is added to the payload. Instead each
scrape looks at each queue's head (the job that has waited longest, as queues are pushed
at the tail and popped at the head) and keeps, beside the queue, the SHA-1 of the head's
bytes and the Redis time it was first seen there (``<ns>:metrics:queue-heads``, a HASH
``<queue>`` -> ``"<sha1> <seconds>"``). The age is how long the current head has been the
head as far as the scrapes saw: a lower bound on its wait, exact to a scrape interval
for a queue that stopped moving, which is what an operator alerts on. docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resque_pool.resque import delayed, failures, job_metrics, records
from resque_pool.resque.connection import get_redis, key, registered_script
from resque_pool.resque.job_metrics import QUEUE_HEADS

CHUNK = 1000  # queues per script call: big enough to amortise, short enough to share Redis

# KEYS: the queue-heads hash, then queue:<q> for each queue; ARGV: Redis's time (whole
# seconds), then each queue's name. Returns, per queue, its length and how many seconds
# its head has been the head (0 for a head seen for the first time, -1 for an empty
# queue). It writes only the head records: a new head's SHA-1 and time, an empty
# queue's record removed. A queue key that is not a list (someone else's value) counts
# as empty rather than failing the whole scrape.
QUEUE_SCRIPT = r"""
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #KEYS do
  local name = ARGV[i]
  local length = redis.pcall('LLEN', KEYS[i])
  if type(length) ~= 'number' then length = 0 end
  local age = -1
  if length > 0 then
    local sha = redis.sha1hex(redis.call('LINDEX', KEYS[i], 0))
    local seen = redis.call('HGET', KEYS[1], name)
    if seen and string.sub(seen, 1, 40) == sha then
      age = math.max(0, now - (tonumber(string.sub(seen, 42)) or now))
    else
      redis.call('HSET', KEYS[1], name, sha .. ' ' .. now)
      age = 0
    end
  elseif redis.call('HEXISTS', KEYS[1], name) == 1 then
    redis.call('HDEL', KEYS[1], name)
  end
  out[#out + 1] = length
  out[#out + 1] = age
end
return out
"""


@dataclass
class Fleet:
    """What one scrape read."""

    now: float = 0.0
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (length, age)
    workers: dict[str, bool] = field(default_factory=dict)  # id: busy
    processed: int = 0
    failed: int = 0
    failed_list: int = 0
    durations: dict[str, str] = field(default_factory=dict)
    job_events: dict[str, str] = field(default_factory=dict)
    delayed_timestamps: int = 0
    delayed_jobs: int = 0
    scheduler_lag: float = 0.0
    pools: list[dict[str, Any]] = field(default_factory=list)
    pool_jobs: dict[str, dict[str, str]] = field(default_factory=dict)  # pool id: events


def read_fleet() -> Fleet:
    client = get_redis()
    fleet = Fleet()
    first = client.pipeline(transaction=False)
    first.time()
    first.smembers(key("queues"))
    first.smembers(key("workers"))
    first.get(key("stat", "processed"))
    first.get(key("stat", "failed"))
    first.llen(key(failures.FAILED))
    first.hgetall(key(job_metrics.DURATIONS))
    first.hgetall(key(job_metrics.JOBS))
    first.hkeys(key(QUEUE_HEADS))
    first.zrange(key(delayed.SCHEDULE), 0, -1, withscores=True)
    first.smembers(key("pools"))
    (
        (seconds, micros),
        queue_names,
        worker_ids,
        processed,
        failed,
        fleet.failed_list,
        fleet.durations,
        fleet.job_events,
        head_names,
        stamps,
        pool_ids,
    ) = first.execute()
    fleet.now = int(seconds) + int(micros) / 1_000_000
    fleet.processed, fleet.failed = _to_int(processed), _to_int(failed)

    names, ids, pool_list = sorted(queue_names), sorted(worker_ids), sorted(pool_ids)
    second = client.pipeline(transaction=False)
    script = registered_script(QUEUE_SCRIPT)
    for chunk in _chunks(names):
        script(
            keys=[key(QUEUE_HEADS), *(key("queue", name) for name in chunk)],
            args=[int(seconds), *chunk],
            client=second,
        )
    for worker_id in ids:
        second.get(key("worker", worker_id))
    for identifier in pool_list:
        second.get(key("pool", identifier))
        second.hgetall(job_metrics.pool_jobs_key(identifier))
    for stamp, _score in stamps:
        second.llen(delayed.timestamp_key(int(float(stamp))))
    stale = sorted(set(head_names) - set(names))
    if stale:  # queues removed since their head was seen
        second.hdel(key(QUEUE_HEADS), *stale)
    replies = iter(second.execute())

    for chunk in _chunks(names):
        flat = next(replies)
        for index, name in enumerate(chunk):
            fleet.queues[name] = (int(flat[2 * index]), int(flat[2 * index + 1]))
    for worker_id in ids:
        fleet.workers[worker_id] = bool(next(replies))
    for identifier in pool_list:
        raw, events = next(replies), next(replies)
        state, ok = records.json_or_text(raw) if raw is not None else (None, False)
        if ok and isinstance(state, dict) and isinstance(state.get("id"), str):
            fleet.pools.append(state)
            fleet.pool_jobs[state["id"]] = events if state["id"] == identifier else {}
    fleet.delayed_timestamps = len(stamps)
    fleet.delayed_jobs = sum(_to_int(next(replies)) for _ in stamps)
    if stamps:
        # resque-scheduler moves a timestamp's items once it is due: the earliest one
        # still there, if due, says how far behind the mover is.
        fleet.scheduler_lag = max(0.0, fleet.now - float(stamps[0][1]))
    return fleet


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[start : start + CHUNK] for start in range(0, len(items), CHUNK)]


def _to_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
