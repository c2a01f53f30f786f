"""The dashboard's rough spots a new user met (issue 20), through Django's test client on
real Redis: one time format (seconds and zone) on every page, the Tasks pages included;
empty lists read as empty; "ran 1 job"."""

from __future__ import annotations

import re

import pytest

from resque_pool.resque.jobs import Job
from resque_pool.templatetags.resque_dashboard import when
from resque_pool.worker.limits import Limits, Recycler
from testproject.demo import tasks as demo
from tests.support.admin import url

pytestmark = pytest.mark.django_db

ONE_FORMAT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z]{3,}")


def test_the_tasks_pages_show_seconds_and_the_zone(viewer, resque):
    done = demo.add.enqueue(2, 3)
    while (job := Job.reserve("default")) is not None:
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
