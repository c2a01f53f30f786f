"""The failed list: Resque's exact entry and every operation on it, against real Redis."""

from __future__ import annotations

import json
import re

import pytest

from resque_pool.errors import DirtyExit, FailureMoved, FailureNotFound
from resque_pool.resque import failures as failure

FAILED_AT = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d UTC$")


def _raise_in_job():
    raise ValueError("bad thing é")


def _record(queue="low", args=(42,), exc=None):
    try:
        if exc is not None:
            raise exc
        _raise_in_job()
    except Exception as error:  # noqa: BLE001 - the point is to capture any job error
        failure.create(error, "vm:6831:high,low", queue, {"class": "BadJob", "args": list(args)})


def test_entry_bytes_match_resque(resque):
    _record()
    raw = resque.client.lindex(resque.key("failed"), 0)
    entry = json.loads(raw)
    assert list(entry) == [
        "failed_at",
        "payload",
        "exception",
        "error",
        "backtrace",
        "worker",
        "queue",
    ]
    assert FAILED_AT.match(entry["failed_at"])
    assert entry["payload"] == {"class": "BadJob", "args": [42]}
    assert entry["exception"] == "ValueError"
    assert entry["error"] == "bad thing é"
    assert entry["worker"] == "vm:6831:high,low"
    assert entry["queue"] == "low"
    # Ruby's frame format, innermost last, and our own frames cut off.
    assert entry["backtrace"][-1].endswith(":in `_raise_in_job'")
    assert all("/resque_pool/" not in frame for frame in entry["backtrace"])
    # Compact separators and raw UTF-8, as MultiJson writes.
    assert ', "' not in raw and '": ' not in raw and "bad thing é" in raw


def test_dirty_exit_uses_ruby_name_and_empty_backtrace(resque):
    failure.create(DirtyExit("Job still being processed"), "h:1:q", "q", {"class": "X", "args": []})
    entry = failure.get(0)
    assert entry["exception"] == "Resque::DirtyExit"
    assert entry["error"] == "Job still being processed"
    assert entry["backtrace"] == []


def test_requeue_stamps_retried_at_last_and_pushes_class_and_args_only(resque):
    failure.create(RuntimeError("x"), "h:1:q", "q", {"class": "Job", "args": [1], "extra": 2})
    failure.requeue(0)
    entry = json.loads(resque.client.lindex(resque.key("failed"), 0))
    assert list(entry)[-1] == "retried_at" and FAILED_AT.match(entry["retried_at"])
    assert resque.client.lrange(resque.key("queue", "q"), 0, -1) == ['{"class":"Job","args":[1]}']
    assert "q" in resque.client.smembers(resque.key("queues"))
    assert failure.count() == 1  # the entry stays, as in Resque


def test_requeue_of_unreadable_payload_is_refused(resque):
    failure.create(RuntimeError("x"), "h:1:q", "q", "not json")
    with pytest.raises(ValueError, match="no job to retry"):
        failure.requeue(0)


def test_remove_deletes_exactly_one_entry(resque):
    for n in range(3):
        _record(args=(n,))
    failure.remove(1)
    assert [e["payload"]["args"] for e in failure.all(0, 10)] == [[0], [2]]
    with pytest.raises(FailureNotFound):
        failure.remove(5)


def test_clear_retried_and_requeue_all_and_clear(resque):
    for n in range(4):
        _record(args=(n,))
    failure.requeue(1)
    failure.requeue(3)
    assert failure.clear_retried() == 2
    assert [e["payload"]["args"] for e in failure.all(0, 10)] == [[0], [2]]
    assert failure.requeue_all() == 2
    assert resque.client.llen(resque.key("queue", "low")) == 4
    failure.clear()
    assert failure.count() == 0


def test_queue_filters(resque):
    _record(queue="a", args=(1,))
    _record(queue="b", args=(2,))
    _record(queue="a", args=(3,))
    assert failure.requeue_queue("a") == 2
    assert failure.remove_queue("a") == 2
    assert [e["queue"] for e in failure.all(0, 10)] == ["b"]


def test_page_newest_first_reads_only_the_slice(resque):
    pipe = resque.client.pipeline()
    for n in range(1000):
        pipe.rpush(
            resque.key("failed"),
            json.dumps(
                {
                    "failed_at": "2026/11/22 08:59:40 CET",
                    "payload": {"class": "J", "args": [n]},
                    "exception": "E",
                    "error": "e",
                    "backtrace": [],
                    "worker": "h:1:q",
                    "queue": "q",
                }
            ),
        )
    pipe.execute()
    rows, total = failure.page(0, 20)
    assert total == 1000
    assert [index for index, _ in rows] == list(range(999, 979, -1))
    assert rows[0][1]["payload"]["args"] == [999]
    rows, _ = failure.page(990, 20)
    assert [index for index, _ in rows] == list(range(9, -1, -1))
    rows, total = failure.page(0, 5, newest_first=False)
    assert [index for index, _ in rows] == [0, 1, 2, 3, 4]


def test_page_class_filter_includes_activejob_wrapped_class(resque):
    resque.client.rpush(
        resque.key("failed"),
        json.dumps(
            {
                "failed_at": "2026/11/22 08:59:40 CET",
                "payload": {
                    "class": "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper",
                    "args": [{"job_class": "MailJob"}],
                },
                "exception": "E",
                "error": "e",
                "backtrace": [],
                "worker": "h:1:q",
                "queue": "q",
            }
        ),
    )
    _record()
    rows, total = failure.page(0, 10, class_name="MailJob")
    assert total == 1 and rows[0][0] == 0
    rows, total = failure.page(0, 10, class_name="BadJob")
    assert total == 1 and rows[0][0] == 1


def test_digest_guards_against_a_shifted_index(resque):
    for n in range(3):
        _record(args=(n,))
    rows, _ = failure.raw_page(0, 10)
    index, raw = rows[-1]  # the oldest entry, index 0
    digest = failure.entry_digest(raw)
    failure.remove(0)  # someone else removes it first: index 0 is now another entry
    with pytest.raises(FailureMoved):
        failure.remove(index, digest)
    with pytest.raises(FailureMoved):
        failure.requeue(index, digest)
    assert failure.count() == 2
    index, raw = failure.raw_page(0, 1)[0][0]
    failure.requeue(index, failure.entry_digest(raw))
    assert resque.client.llen(resque.key("queue", "low")) == 1


def test_requeue_refuses_args_that_are_not_a_list(resque):
    failure.create(RuntimeError("x"), "h:1:q", "q", {"class": "Job", "args": {"a": 1}})
    with pytest.raises(ValueError, match="not a list"):
        failure.requeue(0)
    assert resque.client.exists(resque.key("queue", "q")) == 0
    assert failure.requeue_all() == 0


def test_class_filter_scans_newest_first_across_batches(resque):
    pipe = resque.client.pipeline()
    for n in range(1200):
        name = "Even" if n % 2 == 0 else "Odd"
        pipe.rpush(resque.key("failed"), json.dumps({"payload": {"class": name, "args": [n]}}))
    pipe.execute()
    rows, total = failure.page(0, 3, class_name="Odd")
    assert total == 600
    assert [item["payload"]["args"][0] for _, item in rows] == [1199, 1197, 1195]
    rows, total = failure.page(0, 2, newest_first=False, class_name="Even")
    assert [index for index, _ in rows] == [0, 2]
