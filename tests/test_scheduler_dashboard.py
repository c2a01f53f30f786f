"""The dashboard's Delayed and Schedules pages: paging in Redis, enqueue now, delete,
permissions, CSRF and the admin log; attempts on failures."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from resque_pool.resque import delayed
from resque_pool.resque.failures import entry_digest
from resque_pool.scheduler.models import Schedule
from tests.support.admin import csrf_post, url

pytestmark = pytest.mark.django_db

FUTURE = 4_102_444_800  # 2100-01-01


def push(resque, stamp: int, *tokens: str) -> list[str]:
    items = [f'{{"class":"Record","args":["{t}"],"queue":"demo"}}' for t in tokens]
    for item in items:
        delayed.delayed_push(stamp, item)
    return items


def test_delayed_times_are_listed_a_page_at_a_time(viewer, resque):
    for n in range(60):
        push(resque, FUTURE + n, f"t{n}")
    push(resque, FUTURE, "second")
    page = viewer.get(url("delayed")).content.decode()
    assert "60 scheduled times" in page
    assert "2100-01-01 00:00:00" in page and "2100-01-01 00:00:49" in page
    assert "2100-01-01 00:00:50" not in page  # on page 2
    assert "showing 1–50 of 60" in page
    page2 = viewer.get(url("delayed") + "?page=2").content.decode()
    assert "2100-01-01 00:00:59" in page2
    detail = viewer.get(url("delayed_at", FUTURE)).content.decode()
    assert "&quot;t0&quot;" in detail and "&quot;second&quot;" in detail
    assert "Enqueue now" not in detail  # read-only access


def test_enqueue_now_and_delete_one_item(operator, resque):
    items = push(resque, FUTURE, "a", "b", "c")
    action = url("delayed_action", FUTURE)
    response = csrf_post(
        operator, action, {"index": 1, "digest": entry_digest(items[1]), "action": "enqueue"}
    )
    assert response.status_code == 302
    assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [
        '{"class":"Record","args":["b"]}'
    ]
    assert resque.client.llen(resque.key("wakeup", "demo")) == 1  # an idle worker takes it now
    assert resque.client.lrange(resque.key("delayed", str(FUTURE)), 0, -1) == [items[0], items[2]]
    assert not resque.client.exists(resque.key("timestamps", items[1]))
    # A stale digest (the list moved on) acts on nothing.
    response = csrf_post(
        operator, action, {"index": 1, "digest": entry_digest(items[1]), "action": "delete"}
    )
    assert "no longer there" in operator.get(response["Location"]).content.decode()
    assert delayed.delayed_count() == 2
    csrf_post(operator, action, {"index": 0, "digest": entry_digest(items[0]), "action": "delete"})
    response = csrf_post(
        operator, action, {"index": 0, "digest": entry_digest(items[2]), "action": "delete"}
    )
    assert response["Location"] == url("delayed")  # the time is gone: back to the list
    assert delayed.delayed_count() == 0 and delayed.timestamp_count() == 0
    messages = list(LogEntry.objects.order_by("pk").values_list("change_message", flat=True))
    assert messages == [
        'Enqueued now: Record["b"] due 2100-01-01 00:00:00 UTC',
        'Deleted delayed job: Record["a"] due 2100-01-01 00:00:00 UTC',
        'Deleted delayed job: Record["c"] due 2100-01-01 00:00:00 UTC',
    ]


def test_actions_need_change_permission_and_csrf(viewer, resque):
    items = push(resque, FUTURE, "a")
    data = {"index": 0, "digest": entry_digest(items[0]), "action": "delete"}
    assert viewer.post(url("delayed_action", FUTURE), data).status_code == 403
    from tests.support.admin import make_user

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(make_user("op2", "change_dashboard"))
    assert strict.post(url("delayed_action", FUTURE), data).status_code == 403
    assert strict.get(url("delayed_action", FUTURE)).status_code == 405
    assert delayed.delayed_count() == 1


def test_schedules_page_shows_runs_and_the_leader(viewer, resque):
    Schedule.objects.create(name="nightly", cron="0 3 * * *", job_name="Record", args=["x"])
    resque.client.hset(
        resque.key("delayed:last_enqueued_at"), "nightly", "2026-11-20 03:00:00 +0000"
    )
    resque.client.hset(
        resque.key("delayed:last_enqueued_at"), "ruby_only", "2026-11-20 04:00:00 +0000"
    )
    resque.client.set(resque.key("resque_pool:scheduler_leader"), "host:42")
    page = viewer.get(url("schedules")).content.decode()
    assert "nightly" in page and "cron 0 3 * * *" in page
    assert "now <code>host:42</code>" in page
    assert re.search(r"ruby_only</code>: last run 2026-11-20 04:00:00", page)


def test_failures_show_the_attempts_of_a_give_up(viewer, resque):
    resque.client.rpush(
        resque.key("failed"),
        '{"failed_at":"2026/11/24 18:00:00 UTC","payload":{"class":"Flaky","args":[7]},'
        '"exception":"RuntimeError","error":"boom (gave up after 3 attempts)","backtrace":[],'
        '"worker":"h:1:q","queue":"q"}',
    )
    page = viewer.get(url("failed")).content.decode()
    assert '<dd class="attempts">3 (retried, then gave up)</dd>' in page
