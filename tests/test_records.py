"""One parser per Resque record, shared by the worker, the manager and the dashboard."""

from __future__ import annotations

import pytest

from resque_pool.resque import records


@pytest.mark.parametrize(
    ("text", "host", "pid", "queues", "complete", "well_formed"),
    [
        ("web1:4242:high,low", "web1", "4242", ("high", "low"), True, True),
        ("web1:4242:weird:queue,b", "web1", "4242", ("weird:queue", "b"), True, True),
        ("web1:4242:", "web1", "4242", (), True, True),
        ("web1:pid:q", "web1", "pid", ("q",), True, False),
        ("web1:4242", "web1", "4242", (), False, False),
        ("no-colons", "no-colons", "", (), False, False),
        ("", "", "", (), False, False),
    ],
)
def test_worker_id_is_parsed_like_worker_find(text, host, pid, queues, complete, well_formed):
    parsed = records.parse_worker_id(text)
    assert (parsed.host, parsed.pid, parsed.queues) == (host, pid, queues)
    assert (parsed.complete, parsed.well_formed, parsed.text) == (complete, well_formed, text)


def test_json_or_text_keeps_what_is_not_json():
    assert records.json_or_text('{"class":"A","args":[]}') == ({"class": "A", "args": []}, True)
    assert records.json_or_text("not json") == ("not json", False)
    deep = "[" * 10_000 + "]" * 10_000
    assert records.json_or_text(deep) == (deep, False)
    assert records.json_or_text("null") == (None, True)


def test_job_class_unwraps_activejob_and_tasks():
    from resque_pool.tasks import WRAPPER_NAME

    assert records.job_class({"class": "Plain", "args": []}) == "Plain"
    wrapper = "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper"
    assert records.job_class({"class": wrapper, "args": [{"job_class": "MailJob"}]}) == "MailJob"
    assert records.job_class({"class": wrapper, "args": []}) == wrapper
    assert records.job_class({"class": WRAPPER_NAME, "args": [{"task": "app.t"}]}) == "app.t"
    assert records.job_class({"class": 5}) is None
    assert records.job_class("raw text") is None


@pytest.mark.parametrize(
    ("value", "paused"),
    [("true", True), (" TRUE\n", True), ("false", False), ("", False), (None, False)],
)
def test_pause_all_workers_is_read_as_ruby_reads_it(value, paused):
    assert records.pauses_workers(value) is paused
