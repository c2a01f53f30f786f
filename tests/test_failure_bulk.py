"""Bulk requeue/remove of the failed list while another client edits it.

Failure ids are list indexes, so an entry's index changes when an older one is removed.
A real concurrent writer removes and appends entries while the bulk operation walks the
list in small batches; the bulk operation must act on exactly the entries it selected.
"""

from __future__ import annotations

import json
import threading

import pytest

from resque_pool.resque import failures as failure
from resque_pool.resque.failures import edits as failure_edits


def entry(n: int, cls: str) -> str:
    return json.dumps(
        {
            "failed_at": "2026/11/22 08:59:40 UTC",
            "payload": {"class": cls, "args": [n]},
            "exception": "E",
            "error": f"e{n}",
            "backtrace": [],
            "worker": "h:1:q",
            "queue": "demo",
        },
        separators=(",", ":"),
    )


class Writer(threading.Thread):
    """Another client: removes the oldest "Keep" entries one by one (``LREM`` by value, so
    every index after them shifts) and appends new failures, until told to stop."""

    def __init__(self, resque, keep: list[str]) -> None:
        super().__init__(daemon=True)
        self.resque, self.keep = resque, list(keep)
        self.removed: list[str] = []
        self.pushed: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        client, name = self.resque.client, self.resque.key("failed")
        n = 100_000
        while not self.stop.is_set() and self.keep:
            raw = self.keep.pop(0)
            if client.lrem(name, 1, raw):
                self.removed.append(raw)
            new = entry(n, "Keep")
            client.rpush(name, new)
            self.pushed.append(new)
            n += 1
            self.stop.wait(0.0005)


@pytest.fixture
def mixed(resque, monkeypatch):
    monkeypatch.setattr(failure_edits, "_BATCH", 20)
    rows = [entry(n, "Keep" if n % 3 else "Target") for n in range(1500)]
    resque.client.rpush(resque.key("failed"), *rows)
    return rows


def run_with_writer(resque, rows, operation):
    writer = Writer(resque, [r for r in rows if '"Keep"' in r])
    writer.start()
    try:
        done = operation()
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.removed, "the writer never ran during the operation"
    return done, writer


def test_bulk_remove_hits_only_selected_entries_under_concurrent_removals(resque, mixed):
    targets = [r for r in mixed if '"Target"' in r]
    done, writer = run_with_writer(
        resque, mixed, lambda: failure.remove_selected(failure.Selection(class_name="Target"))
    )
    left = resque.client.lrange(resque.key("failed"), 0, -1)
    assert done == len(targets)
    assert not [r for r in left if '"Target"' in r]
    expected_keep = [r for r in mixed if '"Keep"' in r and r not in writer.removed]
    assert [r for r in left if r in set(mixed)] == expected_keep  # no wrong entry removed
    assert [r for r in left if r not in set(mixed)] == writer.pushed


def test_bulk_requeue_hits_each_selected_entry_once_under_concurrent_removals(resque, mixed):
    targets = [r for r in mixed if '"Target"' in r]
    done, writer = run_with_writer(
        resque, mixed, lambda: failure.requeue_selected(failure.Selection(class_name="Target"))
    )
    assert done == len(targets)
    pushed = [
        json.loads(r)["args"][0] for r in resque.client.lrange(resque.key("queue", "demo"), 0, -1)
    ]
    assert sorted(pushed) == sorted(json.loads(r)["payload"]["args"][0] for r in targets)
    for raw in resque.client.lrange(resque.key("failed"), 0, -1):
        item = json.loads(raw)
        assert ("retried_at" in item) == (item["payload"]["class"] == "Target"), item
