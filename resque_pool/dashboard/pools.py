"""The live pool managers as the dashboard and the WorkerCount admin show them.

Each running ``manage.py resque_pool`` publishes its state with ``pool_state``; this module
adds uptime and heartbeat age and never fails on a state of another shape (a pid that is
not a number, JSON that is not an object): such entries are shown as far as they can be
read, or skipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from resque_pool.dashboard.data import age_seconds, now, to_int
from resque_pool.pool import state as pool_state
from resque_pool.resque import wire


def pools() -> list[dict[str, Any]]:
    """Live pools from ``pool_state``, with uptime and heartbeat age; entries of any other
    shape are shown as far as they can be read instead of breaking the page."""
    reference = now()
    result = []
    for state in pool_state.all_pools():
        started = _time_of(state.get("started"))
        heartbeat = _time_of(state.get("heartbeat"))
        counts = state.get("counts") if isinstance(state.get("counts"), dict) else {}
        running = state.get("workers") if isinstance(state.get("workers"), dict) else {}
        scaled = state.get("autoscale") if isinstance(state.get("autoscale"), dict) else {}
        lists = []
        for queues_text in list(counts) + [q for q in running if q not in counts]:
            pids = running.get(queues_text)
            pids = pids if isinstance(pids, list) else []
            lists.append(
                {
                    "queues": queues_text,
                    "count": counts.get(queues_text),
                    "running": len(pids),
                    "pids": pids,
                    "autoscale": _autoscale(scaled.get(queues_text)),
                }
            )
        result.append(
            {
                **{
                    name: state.get(name)
                    for name in (
                        *("id", "host", "pid", "appname", "pool", "environment", "status"),
                        *("source", "max_workers"),  # for the WorkerCount admin's warning
                        # The release loaded (HUP starts the next) and a deploy waiting
                        # for an older one to drain (pool/generation.py).
                        *("generation", "deploy"),
                    )
                },
                "started": state.get("started"),
                "uptime": age_seconds(started, reference),
                "heartbeat": state.get("heartbeat"),
                "heartbeat_age": age_seconds(heartbeat, reference),
                "lists": lists,
                "memory": memory(state.get("memory")),
                "running_total": sum(item["running"] for item in lists),
                "count_total": sum(to_int(item["count"]) for item in lists),
            }
        )
    return result


def memory(value: Any) -> dict[str, Any] | None:
    """The pool's memory budget (``capacity/memory.py``'s snapshot) in whole MB, for the
    line "memory: 870 of 900 MB, 0 more workers fit"; None when the pool published none
    (an older version) or it is of another shape."""
    if not isinstance(value, dict):
        return None

    def megabytes(name: str) -> int | None:
        number = value.get(name)
        if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
            return round(number / 2**20)
        return None

    fit, refused = value.get("fit"), value.get("refused")
    return {
        "budget_mb": megabytes("budget_bytes"),
        "used_mb": megabytes("used_bytes"),
        "worker_mb": megabytes("worker_bytes"),
        "source": str(value.get("source") or ""),
        "fit": to_int(fit) if fit is not None else None,
        "refused": to_int(refused),
    }


def _time_of(value: Any) -> datetime | None:
    return wire.parse_time(value) if isinstance(value, str) else None


def _autoscale(entry: Any) -> dict[str, Any] | None:
    """An autoscaled list's bounds, target and last decision as the manager published them
    (``capacity/autoscale.py``), or None for a fixed list or an entry of another shape."""
    if not isinstance(entry, dict):
        return None
    decision = entry.get("decision") if isinstance(entry.get("decision"), dict) else None
    return {
        "floor": to_int(entry.get("floor")),
        "max": to_int(entry.get("max")),
        "target": to_int(entry.get("target")),
        "decision": decision
        and {
            "at": str(decision.get("at", "")),
            "from": to_int(decision.get("from")),
            "to": to_int(decision.get("to")),
            "reason": str(decision.get("reason", "")),
        },
    }


def lists_of_row(
    pool_list: list[dict[str, Any]], queues_text: str, environment_name: str, pool_name: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(pool, list item)`` for one queue list in each live pool a WorkerCount row applies
    to (blank environment/pool = every one)."""
    found = []
    for state in pool_list:
        if environment_name and state.get("environment") != environment_name:
            continue
        if pool_name and state.get("pool") != pool_name:
            continue
        found.extend((state, item) for item in state["lists"] if item["queues"] == queues_text)
    return found
