"""The admin's task results pages: who may see them, and what a result shows."""

from __future__ import annotations

import contextlib

import pytest
from django.test import Client
from django.urls import reverse

from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.jobs import Job
from testproject.demo import tasks as demo
from tests.support.admin import make_user, url

pytestmark = pytest.mark.django_db


def run_worker() -> None:
    """Perform what is queued as a worker does (the worker loop itself would close the
    test database's connection between jobs)."""
    while (raw := get_redis().lpop(key("queue", "default"))) is not None:
        job = Job.from_raw("default", raw)
        with contextlib.suppress(ValueError):  # demo.fail: recorded on its result
            job.perform()


def test_anonymous_and_staff_without_permission_cannot_see_task_results(resque):
    result = demo.add.enqueue(1, 2)
    nobody = make_user("nobody")
    for name, args in [("tasks", ()), ("task_result", (result.id,))]:
        response = Client().get(url(name, *args))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
        client = Client()
        client.force_login(nobody)
        assert client.get(url(name, *args)).status_code == 403


def test_the_list_shows_status_times_and_error(viewer, resque):
    waiting = demo.add.enqueue(1, 2)
    done = demo.add.enqueue(2, 3)
    failed = demo.fail.enqueue("bad input")
    run_worker()
    deferred_not_run = demo.add.enqueue(9, 9)
    assert waiting and done and failed and deferred_not_run
    body = viewer.get(url("tasks")).content.decode()
    assert "4 task results" in body
    assert body.count("SUCCESSFUL") == 2
    assert "FAILED" in body and "<code>builtins.ValueError</code>" in body
    assert "READY" in body
    # Waiting tasks are listed first.
    assert body.index("READY") < body.index("SUCCESSFUL")
    assert url("task_result", failed.id) in body
    # The dashboard's tab leads here.
    assert f'href="{url("tasks")}"' in viewer.get(url("changelist")).content.decode()


def test_the_detail_page_shows_everything_about_a_result(viewer, resque):
    failed = demo.fail.enqueue("bad input")
    run_worker()
    body = viewer.get(url("task_result", failed.id)).content.decode()
    assert "testproject.demo.tasks.fail" in body
    assert "FAILED" in body
    assert "ValueError: bad input" in body  # the traceback
    assert "builtins.ValueError" in body
    assert "&quot;bad input&quot;" in body  # the arguments
    ok = demo.add.enqueue(20, 22)
    run_worker()
    body = viewer.get(url("task_result", ok.id)).content.decode()
    assert "<pre>42</pre>" in body


def test_an_unknown_or_expired_result_is_404(viewer, resque):
    assert viewer.get(url("task_result", "nope")).status_code == 404


def test_expired_results_leave_the_list(viewer, resque):
    result = demo.add.enqueue(1, 1)
    run_worker()
    # As Redis expires it: the record gone, its index score (its expiry time) past.
    resque.client.delete(resque.key("task-result", result.id))
    resque.client.zadd(resque.key("task-results"), {result.id: 1})
    body = viewer.get(url("tasks")).content.decode()
    assert "0 task results" in body
    assert resque.client.zcard(resque.key("task-results")) == 0
