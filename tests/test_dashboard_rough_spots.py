"""The dashboard's rough spots a new user met (issue 20), through Django's test client on
real Redis: one time format (seconds and zone) on every page, the Tasks pages included;
empty lists read as empty; "ran 1 job"."""

from __future__ import annotations

import re

import pytest

from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.jobs import Job
from resque_pool.templatetags.resque_dashboard import when
from resque_pool.worker.limits import Limits, Recycler
from testproject.demo import tasks as demo
from tests.support.admin import url

pytestmark = pytest.mark.django_db

ONE_FORMAT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z]{3,}")


def test_the_tasks_pages_show_seconds_and_the_zone(viewer, resque):
    done = demo.add.enqueue(2, 3)
    while (raw := get_redis().lpop(key("queue", "default"))) is not None:
        job = Job.from_raw("default", raw)
        job.perform()
    listing = viewer.get(url("tasks")).content.decode()
    detail = viewer.get(url("task_result", done.id)).content.decode()
    # Enqueued, started, finished: each to the second, with the zone (TIME_ZONE is UTC).
    assert len(ONE_FORMAT.findall(listing)) == 3, ONE_FORMAT.findall(listing)
    assert len(ONE_FORMAT.findall(detail)) == 4  # and last attempted
    for page in (listing, detail):
        assert " a.m." not in page and " p.m." not in page  # Django's default, minutes only


def test_one_time_format_for_every_kind_of_stored_time():
    for stored in (
        "2026-11-22 08:59:40 +0100",  # Ruby's Time#to_s
        "2026-11-22T07:59:40Z",  # ISO 8601
        "2026/11/22 07:59:40 UTC",  # failed_at
        "2026/11/22 08:59:40 CET",
    ):
        assert when(stored) == "2026-11-22 07:59:40 UTC", stored
    assert when("rubbish") == "rubbish"
    assert when(None) == "–"


@pytest.mark.parametrize(
    ("name", "args", "empty"),
    [
        ("failed", (), "There are no failed jobs."),
        ("workers", (), "No workers are registered."),
        ("delayed", (), "There are no delayed jobs."),
        ("queue", ("nothing-here",), "There are no pending jobs in this queue."),
    ],
)
def test_an_empty_list_reads_as_empty(viewer, resque, name, args, empty):
    body = viewer.get(url(name, *args)).content.decode()
    assert empty in body
    assert "Showing 0" not in body and "0–0 of 0" not in body


def test_a_recycled_worker_ran_one_job_not_one_jobs():
    assert Recycler(Limits(max_jobs=1)).job_done() == "ran 1 job (limit 1)"
    twice = Recycler(Limits(max_jobs=2))
    twice.job_done()
    assert twice.job_done() == "ran 2 jobs (limit 2)"


# -- a payload over 64 KB is shown cut, with its size and a link to the whole value ------


BIG = "x" * (10 * 1024 * 1024)  # a 10 MB argument


def whole(viewer, body: str) -> str:
    """Follow the page's one "the whole value" link; the plain text it answers."""
    import html

    [link] = re.findall(r'<a href="([^"]+)">the whole value</a>', body)
    response = viewer.get(html.unescape(link))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_a_10_mb_job_is_cut_on_the_queue_page(viewer, resque):
    payload = '{"class":"Record","args":["' + BIG + '"]}'
    resque.client.sadd(resque.key("queues"), "big")
    resque.client.rpush(resque.key("queue", "big"), '{"class":"Noop","args":[]}', payload)
    body = viewer.get(url("queue", "big")).content.decode()
    assert len(body) < 200 * 1024  # not a 10 MB page
    assert "… cut: the first 64.0 KB of 10.0 MB are shown;" in body
    assert whole(viewer, body) == payload  # the link gives the stored item, whole


def test_a_10_mb_failure_and_a_10_mb_running_job_are_cut(viewer, resque):
    from tests.support.admin import ruby_worker

    failure = (
        '{"failed_at":"2026/11/22 07:59:40 UTC","payload":{"class":"Record","args":["'
        + BIG
        + '"]},"exception":"RuntimeError","error":"boom","backtrace":[],'
        '"worker":"h:1:q","queue":"q"}'
    )
    resque.client.rpush(resque.key("failed"), failure)
    body = viewer.get(url("failed")).content.decode()
    assert len(body) < 200 * 1024
    assert "of 10.0 MB are shown" in body
    assert whole(viewer, body) == failure
    job = '{"queue":"q","run_at":"2026-11-22T07:59:40Z","payload":{"class":"Record","args":["'
    job += BIG + '"]}}'
    worker = ruby_worker(resque, job=job)
    body = viewer.get(url("worker", worker)).content.decode()
    assert len(body) < 200 * 1024
    assert whole(viewer, body) == job


def test_a_small_payload_is_shown_whole_without_a_link(viewer, resque):
    resque.client.sadd(resque.key("queues"), "small")
    resque.client.rpush(resque.key("queue", "small"), '{"class":"Noop","args":["tiny"]}')
    body = viewer.get(url("queue", "small")).content.decode()
    assert "tiny" in body and "the whole value" not in body
