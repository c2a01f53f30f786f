"""The admin's Resque dashboard: permissions, CSRF, pages, pagination and every action.

Test data is written into Redis exactly as Ruby's Resque writes it
(``docs/wire-format.md``), including the odd values Ruby and other
clients leave behind.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from resque_pool.dashboard import failures
from resque_pool.pool import state as pool_state
from tests.support.admin import (
    RUBY_FAILURE,
    RecordedCommands,
    csrf_post,
    make_user,
    push_jobs,
    ruby_worker,
    url,
)

pytestmark = pytest.mark.django_db


# -- permissions -----------------------------------------------------------------------------

ALL_PAGES = ["changelist", "poll", "queues", "workers", "failed", "stats"]


@pytest.mark.parametrize("name", ALL_PAGES)
def test_anonymous_is_sent_to_login(name):
    response = Client().get(url(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", ALL_PAGES)
def test_staff_without_permission_gets_403(name):
    client = Client()
    client.force_login(make_user("nobody"))
    assert client.get(url(name)).status_code == 403


def test_staff_with_workercount_perms_only_gets_403():
    client = Client()
    client.force_login(make_user("counts", "view_workercount", "change_workercount"))
    assert client.get(url("changelist")).status_code == 403


@pytest.mark.parametrize("name", ALL_PAGES)
def test_viewer_sees_every_page_without_action_buttons(viewer, name, resque):
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    response = viewer.get(url(name))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Retry all" not in body and "Remove…" not in body


def test_viewer_cannot_act(viewer, resque):
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    push_jobs(resque, "demo", ['{"class":"Noop","args":[]}'])
    digest = failures.entry_digest(RUBY_FAILURE)
    for name, data in [
        ("failed_retry", {"index": 0, "digest": digest}),
        ("failed_remove", {"index": 0, "digest": digest}),
        ("failed_retry_all", {}),
        ("failed_clear", {}),
        ("failed_clear_retried", {}),
        ("remove_queue", {"name": "demo"}),
    ]:
        assert viewer.post(url(name), data).status_code == 403, name
    assert viewer.get(url("failed_clear")).status_code == 403
    assert resque.client.llen(resque.key("failed")) == 1
    assert resque.client.llen(resque.key("queue", "demo")) == 1


def test_app_index_links_to_dashboard(viewer):
    response = viewer.get(reverse("admin:app_list", args=["resque_pool"]))
    assert url("changelist") in response.content.decode()


def test_superuser_sees_dashboard_in_index():
    client = Client()
    client.force_login(make_user("root", superuser=True))
    body = client.get(reverse("admin:index")).content.decode()
    assert "Resque dashboard" in body and url("changelist") in body


# -- CSRF --------------------------------------------------------------------------------------


def test_actions_refuse_a_post_without_csrf_token(operator, resque):
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    response = operator.post(url("failed_clear"))
    assert response.status_code == 403
    assert resque.client.llen(resque.key("failed")) == 1


def test_actions_refuse_get(operator, resque):
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    asked = operator.get(url("failed_retry_all"))  # asks first, changes nothing
    assert asked.status_code == 200 and "Are you sure" in asked.content.decode()
    assert operator.get(url("failed_retry") + "?index=0&digest=x").status_code == 405
    assert resque.client.llen(resque.key("queue", "low")) == 0


# -- overview ----------------------------------------------------------------------------------


def test_overview_shows_queues_workers_totals_and_pools(viewer, resque):
    push_jobs(resque, "high", ['{"class":"A","args":[]}'] * 3)
    push_jobs(resque, "low", ['{"class":"B","args":[]}'])
    resque.client.set(resque.key("stat", "processed"), 42)
    resque.client.set(resque.key("stat", "failed"), 7)
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    ruby_worker(
        resque,
        job='{"queue":"high","run_at":"2026-11-22T07:59:40Z",'
        '"payload":{"class":"SlowJob","args":[1]}}',
    )
    ruby_worker(resque, "rubyhost:7013:high,low")
    pool_state.publish(
        {
            "id": "web1:4242",
            "host": "web1",
            "pid": 4242,
            "appname": "app",
            "pool": "web1",
            "environment": "production",
            "started": "2026-11-22T07:59:40+00:00",
            "counts": {"high,low": 2},
            "workers": {"high,low": [11, 12]},
            "status": "running",
        }
    )
    response = viewer.get(url("changelist"))
    body = response.content.decode()
    assert response.status_code == 200
    info = response.context["info"]
    assert (
        info["pending"],
        info["processed"],
        info["failed"],
        info["workers"],
        info["working"],
    ) == (4, 42, 1, 2, 1)
    assert "SlowJob" in body and "rubyhost:7012" in body
    assert "web1" in body and "production" in body
    assert 'data-queues="high,low"' in body
    assert f'data-poll-url="{url("poll")}"' in body
    assert "resque_pool/dashboard.js" in body
    poll = viewer.get(url("poll"))
    assert poll.status_code == 200 and "<html" not in poll.content.decode()
    assert "SlowJob" in poll.content.decode()


def test_overview_survives_odd_pool_states(viewer, resque):
    resque.client.sadd(resque.key("pools"), "a:1", "b:2", "c:3")
    resque.client.set(resque.key("pool", "a:1"), '{"id":"a:1","pid":"not a pid"}')
    resque.client.set(resque.key("pool", "b:2"), "[1, 2]")
    resque.client.set(resque.key("pool", "c:3"), "not json")
    assert viewer.get(url("changelist")).status_code == 200


# -- queues ------------------------------------------------------------------------------------


def test_queue_page_is_paginated_with_lrange(viewer, resque):
    push_jobs(resque, "big", [json.dumps({"class": "Job", "args": [i]}) for i in range(2500)])
    response = viewer.get(url("queue", "big"))
    jobs = response.context["jobs"]
    assert len(jobs) == 20 and jobs[0]["args"] == [0]
    last = viewer.get(url("queue", "big") + "?page=125").context["jobs"]
    assert last[-1]["args"] == [2499]
    beyond = viewer.get(url("queue", "big") + "?page=999").context["page"]
    assert beyond["number"] == 125


def test_queue_page_and_remove_confirmation_read_llen_and_one_slice(viewer, operator, resque):
    push_jobs(resque, "big", [json.dumps({"class": "Job", "args": [i]}) for i in range(500)])
    with RecordedCommands(resque) as recorded:
        response = viewer.get(url("queue", "big") + "?page=3")
    assert [job["args"] for job in response.context["jobs"]] == [[i] for i in range(40, 60)]
    queue_key = resque.key("queue", "big")
    assert recorded.named("LRANGE") == [["LRANGE", queue_key, "40", "59"]]
    assert recorded.named("LLEN") == [["LLEN", queue_key]]
    with RecordedCommands(resque) as recorded:
        confirm = operator.get(url("remove_queue") + "?name=big")
    assert "500 pending job" in confirm.content.decode()
    assert recorded.named("LRANGE") == [] and recorded.named("LLEN") == [["LLEN", queue_key]]


def test_queue_page_shows_ruby_and_broken_payloads(viewer, resque):
    push_jobs(
        resque,
        "mixed:colon/slash",
        [
            '{"class":"GoodJob","args":[1,"two",{"three":3.0,"four":null},[true,false],"é/ü"]}',
            "this is not json",
            '["a list"]',
            '{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper",'
            '"args":[{"job_class":"MailJob","arguments":[]}]}',
        ],
    )
    response = viewer.get(url("queue", "mixed:colon/slash"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "GoodJob" in body and "é/ü" in body and "this is not json" in body
    assert "MailJob" in body


def test_remove_queue_asks_then_removes(operator, resque):
    push_jobs(resque, "doomed", ['{"class":"A","args":[]}'] * 5)
    push_jobs(resque, "kept", ['{"class":"A","args":[]}'])
    confirm = operator.get(url("remove_queue") + "?name=doomed")
    assert confirm.status_code == 200 and "5 pending job" in confirm.content.decode()
    assert resque.client.llen(resque.key("queue", "doomed")) == 5
    response = csrf_post(operator, url("remove_queue"), {"name": "doomed"})
    assert response.status_code == 302
    assert resque.client.smembers(resque.key("queues")) == {"kept"}
    assert not resque.client.exists(resque.key("queue", "doomed"))
    entry = LogEntry.objects.get()
    assert "doomed" in entry.change_message and entry.user.username == "operator"


# -- workers -----------------------------------------------------------------------------------


def test_workers_page_renders_ruby_and_malformed_workers(viewer, resque):
    ruby_worker(
        resque,
        job='{"queue":"high","run_at":"2026-11-22T07:59:40Z",'
        '"payload":{"class":"SlowJob","args":[1]}}',
        processed="3",
        failed="1",
    )
    ruby_worker(resque, "rubyhost:7014:weird:queue,b", heartbeat="not a time", started="garbage")
    ruby_worker(resque, "no-colons-at-all", heartbeat=None, started=None)
    ruby_worker(resque, "rubyhost:7015:x", job="not json either")
    response = viewer.get(url("workers") + "?all=1")
    body = response.content.decode()
    assert response.status_code == 200
    assert "unreadable: not a time" in body and "malformed id" in body
    assert "weird:queue" in body and "SlowJob" in body
    rows = {w["id"]: w for w in response.context["workers"]}
    assert rows["rubyhost:7012:high,low"]["processed"] == 3
    assert rows["rubyhost:7014:weird:queue,b"]["queues"] == ["weird:queue", "b"]
    for worker_id in rows:
        assert viewer.get(url("worker", worker_id)).status_code == 200, worker_id


def test_worker_detail_shows_what_it_is_doing(viewer, resque):
    worker = ruby_worker(
        resque,
        job='{"queue":"high","run_at":"2026-11-22T07:59:40Z",'
        '"payload":{"class":"SlowJob","args":[1,"é"]}}',
        processed="12",
        failed="2",
    )
    body = viewer.get(url("worker", worker)).content.decode()
    for text in (
        "rubyhost",
        "7012",
        "2026-11-22 07:59:40 UTC",  # started "2026-11-22 08:59:40 +0100", in one format
        "SlowJob",
        "é",
        "since 2026-11-22 07:59:40 UTC",  # run_at "2026-11-22T07:59:40Z", the same format
        "<td>12</td>",
        "<td>2</td>",
    ):
        assert text in body, text
    assert viewer.get(url("worker", "ghost:1:x")).status_code == 404


def test_workers_grouped_by_host_when_several(viewer, resque):
    for host in ("a", "b"):
        for pid in (1, 2):
            ruby_worker(resque, f"{host}:{pid}:q")
    response = viewer.get(url("workers"))
    assert response.context["grouped"] and response.context["hosts"] == [("a", 2), ("b", 2)]
    only_a = viewer.get(url("workers") + "?host=a").context["workers"]
    assert [w["id"] for w in only_a] == ["a:1:q", "a:2:q"]
    assert len(viewer.get(url("workers") + "?all=1").context["workers"]) == 4


# -- stats -------------------------------------------------------------------------------------


def test_stats_page_shows_resque_info_and_redis_info(viewer, resque):
    push_jobs(resque, "a", ['{"class":"A","args":[]}'] * 2)
    resque.client.set(resque.key("stat", "processed"), "9")
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    response = viewer.get(url("stats"))
    info = dict(response.context["info"])
    assert info["pending"] == 2 and info["processed"] == 9 and info["failed"] == 1
    assert info["queues"] == 1 and info["workers"] == 0 and info["working"] == 0
    assert info["servers"][0].endswith("/" + resque.namespace)
    body = response.content.decode()
    assert "redis_version" in body and "environment" in body


def test_multi_queue_failure_lists_are_listed(viewer, resque):
    resque.client.sadd(resque.key("failed_queues"), "low_failed")
    resque.client.rpush(resque.key("low_failed"), RUBY_FAILURE, RUBY_FAILURE)
    response = viewer.get(url("queues"))
    assert response.context["failed_queues"] == [{"name": "low_failed", "size": 2}]


def test_overview_lists_at_most_fifty_busy_workers(viewer, resque):
    job = '{"queue":"q","run_at":"2026-11-22T07:59:40Z","payload":{"class":"J","args":[]}}'
    for pid in range(60):
        ruby_worker(resque, f"h:{pid}:q", job=job)
    response = viewer.get(url("poll"))
    assert len(response.context["working"]) == 50
    assert "50 shown of 60" in response.content.decode()


def test_keys_pages_list_every_type_and_show_contents(viewer, resque):
    push_jobs(resque, "high", ['{"class":"A","args":[1]}'])
    ruby_worker(resque)
    resque.client.set(resque.key("stat", "processed"), "5")
    resque.client.zadd(resque.key("delayed_queue_schedule"), {"1795410000": 1795410000})
    resque.client.set("other-namespace:queues", "not ours")
    response = viewer.get(url("keys"))
    rows = {r["key"]: r for r in response.context["rows"]}
    assert rows["queues"]["type"] == "set" and rows["queue:high"]["size"] == 1
    assert rows["workers:heartbeat"]["type"] == "hash"
    assert rows["delayed_queue_schedule"]["type"] == "zset"
    assert not any("other-namespace" in k for k in rows)
    for key in rows:
        assert viewer.get(url("key", key)).status_code == 200, key
    found = viewer.get(url("key", "queue:high")).context["found"]
    assert found["items"] == [(0, '{"class":"A","args":[1]}')]
    assert viewer.get(url("key", "missing")).status_code == 404


def test_keys_page_follows_the_scan_cursor(viewer, resque):
    for n in range(450):
        resque.client.set(resque.key("k", str(n)), n)
    seen, path = set(), url("keys")
    for _ in range(20):
        response = viewer.get(path)
        seen.update(r["key"] for r in response.context["rows"])
        path = response.context["next_url"]
        if not path:
            break
    assert {f"k:{n}" for n in range(450)} <= seen


def test_permission_is_checked_before_redis_is_read(settings):
    from resque_pool.resque import connection

    client = Client()
    client.force_login(make_user("nobody"))
    settings.RESQUE_REDIS_URL = "redis://127.0.0.1:1/0"
    connection.reset_connections()
    assert client.get(url("changelist")).status_code == 403


# -- the overview's details --------------------------------------------------------------------


def test_overview_clock_is_one_clock_with_its_zone(viewer):
    """The first render and every live refresh show the server's clock with its zone (the
    script copies the fragment's ``data-updated``), never the browser's."""
    body = viewer.get(url("changelist")).content.decode()
    assert re.search(r'id="resque-live-state">updated \d\d:\d\d:\d\d UTC<', body)
    poll = viewer.get(url("poll")).content.decode()
    assert re.search(r'data-updated="\d\d:\d\d:\d\d UTC"', poll)


def test_queues_heading_counts_the_rows_it_shows(viewer, resque):
    push_jobs(resque, "a", ['{"class":"A","args":[]}'])
    push_jobs(resque, "b", [])
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    body = viewer.get(url("queues")).content.decode()
    assert "<caption>2 queues</caption>" in body
    assert body.count('class="queue-row"') == 2


def test_pools_of_different_apps_on_one_host_are_told_apart(viewer):
    for pid, app in ((10, "shop"), (11, "billing")):
        pool_state.publish(
            {"id": f"web1:{pid}", "host": "web1", "pid": pid, "appname": app, "pool": "web1"}
        )
    body = viewer.get(url("poll")).content.decode()
    assert "<th>App</th>" in body and "<td>shop</td>" in body and "<td>billing</td>" in body


def test_a_pool_shows_its_generation_and_a_deploy_that_waits(viewer):
    pool_state.publish(
        {
            "id": "web1:12",
            "host": "web1",
            "pid": 12,
            "appname": "shop",
            "pool": "web1",
            "status": "running",
            "generation": 2,
            "deploy": "generation 1 still drains 1 worker(s); the new release loads once gone",
        }
    )
    body = viewer.get(url("poll")).content.decode()
    assert "running (generation 2)" in body
    assert "generation 1 still drains 1 worker(s)" in body


def test_redis_down_page_says_read_only_only_to_viewers(viewer, operator, settings):
    from resque_pool.resque import connection

    settings.RESQUE_REDIS_URL = "redis://127.0.0.1:1/0"
    connection.reset_connections()
    down = operator.get(url("changelist"))
    assert down.status_code == 503 and "read-only access" not in down.content.decode()
    root = Client()
    root.force_login(make_user("root", superuser=True))
    assert "read-only access" not in root.get(url("changelist")).content.decode()
    assert "read-only access" in viewer.get(url("changelist")).content.decode()


def test_pause_and_resume_all_workers(viewer, operator, resque):
    assert viewer.post(url("pause_workers")).status_code == 403
    assert viewer.get(url("pause_workers")).status_code == 403
    assert "Pause all workers…" not in viewer.get(url("changelist")).content.decode()
    assert "Pause all workers…" in operator.get(url("changelist")).content.decode()
    confirm = operator.get(url("pause_workers"))
    assert "Are you sure" in confirm.content.decode()
    assert not resque.client.exists(resque.key("pause-all-workers"))  # asking changed nothing
    response = csrf_post(operator, url("pause_workers"))
    assert response.status_code == 302
    assert resque.client.get(resque.key("pause-all-workers")) == "true"
    assert "Workers are paused" in viewer.get(url("poll")).content.decode()
    assert "Resume all workers…" in operator.get(url("poll")).content.decode()
    csrf_post(operator, url("resume_workers"))
    assert not resque.client.exists(resque.key("pause-all-workers"))
    assert "Workers are paused" not in viewer.get(url("poll")).content.decode()
    assert list(LogEntry.objects.order_by("pk").values_list("change_message", flat=True)) == [
        "Paused all workers (pause-all-workers set)",
        "Resumed all workers (pause-all-workers deleted)",
    ]


def test_overview_shows_workers_paused_by_another_client(viewer, resque):
    resque.client.set(resque.key("pause-all-workers"), " TRUE\n")  # as Ruby reads it
    assert "Workers are paused" in viewer.get(url("changelist")).content.decode()


# -- paging and HTTP methods -------------------------------------------------------------------


def test_pages_use_elided_page_ranges(viewer, resque):
    push_jobs(resque, "big", [json.dumps({"class": "Job", "args": [i]}) for i in range(2500)])
    page = viewer.get(url("queue", "big") + "?page=60").context["page"]
    numbers = [number for number, _href in page["links"]]
    assert numbers == [1, "…", 58, 59, 60, 61, 62, "…", 125]
    assert page["first_shown"] == 1181 and page["last_shown"] == 1200
    for n in range(230):
        ruby_worker(resque, f"h:{n:03d}:q")
    workers = viewer.get(url("workers") + "?page=3")
    assert [w["id"] for w in workers.context["workers"]][:2] == ["h:200:q", "h:201:q"]
    assert len(workers.context["workers"]) == 30 and workers.context["page"]["pages"] == 3


def test_pages_refuse_post_and_actions_refuse_other_methods(operator):
    pages = ("changelist", "poll", "queues", "workers", "failed", "stats", "keys")
    for name in (*pages, "tasks", "delayed", "schedules"):
        assert csrf_post(operator, url(name)).status_code == 405, name
    token = operator.cookies["csrftoken"].value
    assert operator.put(url("failed_clear"), HTTP_X_CSRFTOKEN=token).status_code == 405
    assert operator.delete(url("pause_workers"), HTTP_X_CSRFTOKEN=token).status_code == 405
    assert operator.get(url("failed_retry")).status_code == 405
