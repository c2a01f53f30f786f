"""Live pool state in Redis, written by each running manager and read by the admin.

Keys of our own under the namespace (they never change the meaning of Resque's keys):

- ``<ns>:pools``: SET of pool ids (``host:pid``);
- ``<ns>:pool:<host:pid>``: STRING, a JSON object, written by the manager when it changes
  and refreshed three times per ``RESQUE_POOL_STATE_TTL`` seconds, its expiry::

    {"id": "web1:4242", "host": "web1", "pid": 4242, "appname": "myapp",
     "pool": "web1", "environment": "production",
     "started": "2026-11-22T07:59:40+00:00", "heartbeat": "2026-11-22T08:03:11+00:00",
     "counts": {"high,low": 2, "mail": 1}, "workers": {"high,low": [4301, 4302]},
     "status": "running", "source": "database", "max_workers": 256,
     "autoscale": {"high,low": {"floor": 1, "max": 8, "target": 2, "ups": 1, "downs": 0,
                                "decision": {"at": "2026-11-22T08:01:02+00:00", "from": 1,
                                             "to": 2, "reason": "3 jobs waiting, ..."}}},
     "figures": {"spawned": 3, "recycled": 0, "died": 0, "hung_killed": 0, "backoffs": 0,
                 "rss_bytes": 98304000},
     "memory": {"budget_bytes": 943718400, "source": "cgroup v1", "used_bytes": 912261120,
                "worker_bytes": 99614720, "fit": 0, "refused": 3}}

``counts`` are the counts the pool applies (its last good ones; an autoscaled list's is
its floor, ``autoscale`` its bounds, target and last decision: ``capacity/autoscale.py``),
``source`` where they come from (``database``, a file path or a loader's dotted path) and
``max_workers`` its ``RESQUE_POOL_MAX_WORKERS``: the admin warns when the rows a database
pool merges add up to more. ``figures`` are the pool's counters and its workers' summed
resident memory (``pool/figures.py``), read by the metrics view; ``<ns>:metrics:pool-
jobs:<host:pid>``, the pool's job event counts, expires with the state. ``memory`` is its
memory budget (``capacity/memory.py``): ``budget_bytes`` (null: no budget), where it came
from (``source``: ``setting``, ``cgroup v2``, ``cgroup v1`` or ``none``), the tree's summed
PSS (``used_bytes``), a new worker's estimate (``worker_bytes``), how many more workers fit
(``fit``, null without a budget) and how many it did not fork at its last decision for
lack of room (``refused``); ``problem`` says why a cgroup file could not be read, when so.

A pool whose key expired (manager killed) disappears from listings; readers drop it from
the set as they notice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from resque_pool.conf import settings
from resque_pool.resque import job_metrics, records, wire
from resque_pool.resque.connection import get_redis, key


def pool_id(host: str, pid: int) -> str:
    return f"{host}:{pid}"


def publish(state: dict[str, Any]) -> None:
    """Write one pool's state (must contain ``id``) with the configured expiry."""
    ttl = max(int(settings.RESQUE_POOL_STATE_TTL), 1)
    state = {**state, "heartbeat": datetime.now(UTC).isoformat(timespec="seconds")}
    pipe = get_redis().pipeline(transaction=False)
    pipe.sadd(key("pools"), state["id"])
    pipe.set(key("pool", state["id"]), wire.dumps(state), ex=ttl)
    # The pool's job event counts (resque/job_metrics.py) live as long as its state.
    pipe.expire(job_metrics.pool_jobs_key(state["id"]), ttl)
    pipe.execute()


def withdraw(identifier: str) -> None:
    pipe = get_redis().pipeline(transaction=False)
    pipe.srem(key("pools"), identifier)
    pipe.delete(key("pool", identifier))
    pipe.delete(job_metrics.pool_jobs_key(identifier))
    pipe.execute()


def all_pools() -> list[dict[str, Any]]:
    """Every live pool, sorted by host then pid; expired ids are removed from the set.

    A state of another shape (not JSON, not an object, a pid that is not a number) is
    skipped rather than allowed to break a reader such as the admin or ``--kill-others``.
    """
    client = get_redis()
    ids = sorted(client.smembers(key("pools")))
    if not ids:
        return []
    raws = client.mget([key("pool", identifier) for identifier in ids])
    pools, gone = [], []
    for identifier, raw in zip(ids, raws, strict=True):
        if raw is None:
            gone.append(identifier)
            continue
        state, ok = records.json_or_text(raw)
        if not ok:
            continue
        pid = state.get("pid") if isinstance(state, dict) else None
        if isinstance(pid, int) and not isinstance(pid, bool):
            pools.append(state)
    if gone:
        client.srem(key("pools"), *gone)
    return sorted(pools, key=_sort_key)


def _sort_key(state: dict[str, Any]) -> tuple[str, int]:
    return (str(state.get("host")), state["pid"])
