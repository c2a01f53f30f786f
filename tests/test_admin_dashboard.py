"""The admin's Resque dashboard: permissions, CSRF, pages, pagination and every action.

Test data is written into Redis exactly as Ruby's Resque writes it
(``shared/reference/resque-wire-format.md``), including the odd values Ruby and other
clients leave behind.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from resque_pool import pool_state
from resque_pool.dashboard import failures

pytestmark = pytest.mark.django_db

RUBY_FAILURE = (
    '{"failed_at":"2026/11/22 08:59:40 CET","payload":{"class":"BadJob","args":[42]},'
    '"exception":"ArgumentError","error":"bad thing é","backtrace":["exp2.rb:25:in `perform\'"],'
    '"worker":"vm:6831:high,low","queue":"low"}'
)


def url(name: str, *args) -> str:
    return reverse(f"admin:resque_pool_dashboard_{name}", args=args)


def make_user(username: str, *codenames: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True,
                                    is_superuser=superuser)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename,
                                                         content_type__app_label="resque_pool"))
    return user


@pytest.fixture
def viewer() -> Client:
    client = Client()
    client.force_login(make_user("viewer", "view_dashboard"))
    return client


@pytest.fixture
def operator() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("operator", "change_dashboard"))
    return client


def csrf_post(client: Client, path: str, data: dict | None = None, page: str | None = None):
    """POST as a browser does: read the CSRF token from a page first."""
    client.get(page or url("changelist"))
    token = client.cookies["csrftoken"].value
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": token})


def ruby_worker(resque, worker_id="rubyhost:7012:high,low", *, job=None,
                heartbeat="2026-11-22T08:59:40+01:00", started="2026-11-22 08:59:40 +0100",
                processed=None, failed=None) -> str:
    c = resque.client
    c.sadd(resque.key("workers"), worker_id)
    if started is not None:
        c.set(resque.key("worker", worker_id, "started"), started)
    if heartbeat is not None:
        c.hset(resque.key("workers:heartbeat"), worker_id, heartbeat)
    if job is not None:
        c.set(resque.key("worker", worker_id), job)
    if processed is not None:
        c.set(resque.key("stat", "processed", worker_id), processed)
    if failed is not None:
        c.set(resque.key("stat", "failed", worker_id), failed)
    return worker_id


def push_jobs(resque, queue: str, payloads: list[str]) -> None:
    resque.client.sadd(resque.key("queues"), queue)
    if payloads:
        resque.client.rpush(resque.key("queue", queue), *payloads)


def failure_json(n: int, cls: str = "BadJob", **extra) -> str:
    entry = {"failed_at": "2026/11/22 08:59:40 UTC", "payload": {"class": cls, "args": [n]},
             "exception": "RuntimeError", "error": f"boom {n}", "backtrace": [f"f.py:{n}"],
             "worker": "py:1:demo", "queue": "demo", **extra}
    return json.dumps(entry, separators=(",", ":"))


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
    for name, data in [("failed_retry", {"index": 0, "digest": digest}),
                       ("failed_remove", {"index": 0, "digest": digest}),
                       ("failed_retry_all", {}), ("failed_clear", {}),
                       ("failed_clear_retried", {}), ("remove_queue", {"name": "demo"})]:
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
    assert operator.get(url("failed_retry_all")).status_code == 405
    assert operator.get(url("failed_retry") + "?index=0&digest=x").status_code == 405
    assert resque.client.llen(resque.key("queue", "low")) == 0


# -- overview ----------------------------------------------------------------------------------


def test_overview_shows_queues_workers_totals_and_pools(viewer, resque):
    push_jobs(resque, "high", ['{"class":"A","args":[]}'] * 3)
    push_jobs(resque, "low", ['{"class":"B","args":[]}'])
    resque.client.set(resque.key("stat", "processed"), 42)
    resque.client.set(resque.key("stat", "failed"), 7)
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    ruby_worker(resque, job='{"queue":"high","run_at":"2026-11-22T07:59:40Z",'
                             '"payload":{"class":"SlowJob","args":[1]}}')
    ruby_worker(resque, "rubyhost:7013:high,low")
    pool_state.publish({"id": "web1:4242", "host": "web1", "pid": 4242, "appname": "app",
                        "pool": "web1", "environment": "production",
                        "started": "2026-11-22T07:59:40+00:00",
                        "counts": {"high,low": 2}, "workers": {"high,low": [11, 12]},
                        "status": "running"})
    response = viewer.get(url("changelist"))
    body = response.content.decode()
    assert response.status_code == 200
    info = response.context["info"]
    assert (info["pending"], info["processed"], info["failed"], info["workers"],
            info["working"]) == (4, 42, 1, 2, 1)
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


def test_queue_page_shows_ruby_and_broken_payloads(viewer, resque):
    push_jobs(resque, "mixed:colon/slash", [
        '{"class":"GoodJob","args":[1,"two",{"three":3.0,"four":null},[true,false],"é/ü"]}',
        "this is not json",
        '["a list"]',
        '{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper",'
        '"args":[{"job_class":"MailJob","arguments":[]}]}',
    ])
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
    ruby_worker(resque, job='{"queue":"high","run_at":"2026-11-22T07:59:40Z",'
                             '"payload":{"class":"SlowJob","args":[1]}}',
                processed="3", failed="1")
    ruby_worker(resque, "rubyhost:7014:weird:queue,b", heartbeat="not a time",
                started="garbage")
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
    worker = ruby_worker(resque, job='{"queue":"high","run_at":"2026-11-22T07:59:40Z",'
                                     '"payload":{"class":"SlowJob","args":[1,"é"]}}',
                         processed="12", failed="2")
    body = viewer.get(url("worker", worker)).content.decode()
    for text in ("rubyhost", "7012", "2026-11-22 08:59:40 +0100", "SlowJob", "é",
                 "2026-11-22T07:59:40Z", "<td>12</td>", "<td>2</td>"):
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


# -- failed ------------------------------------------------------------------------------------


def test_failed_page_one_shows_newest_of_a_thousand(viewer, resque):
    resque.client.rpush(resque.key("failed"), *[failure_json(n) for n in range(1000)])
    response = viewer.get(url("failed"))
    rows = response.context["rows"]
    assert [r["index"] for r in rows] == list(range(999, 979, -1))
    assert "boom 999" in response.content.decode()
    last = viewer.get(url("failed") + "?page=50").context["rows"]
    assert [r["index"] for r in last] == list(range(19, -1, -1))
    assert response.context["page"]["pages"] == 50


def test_failed_class_filter(viewer, resque):
    resque.client.rpush(resque.key("failed"),
                        *[failure_json(n, "Even" if n % 2 == 0 else "Odd") for n in range(100)])
    response = viewer.get(url("failed") + "?class=Odd&page=2")
    rows = response.context["rows"]
    assert response.context["total"] == 50
    assert [r["index"] for r in rows] == list(range(59, 19, -2))
    assert all(r["class"] == "Odd" for r in rows)


def test_failed_page_renders_ruby_and_broken_entries(viewer, resque):
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE,
                        '{"payload":{"class":"NoWorker","args":[]},"exception":"type",'
                        '"error":"type: <class \'ValueError\'>","backtrace":"line1\\nline2",'
                        '"failed_at":"2026/11/22 08:59:40"}',
                        '{"failed_at":"rubbish","payload":"raw text"}', "not json at all",
                        '{"retried_at":"2026/11/22 09:00:00 CET","payload":{"class":"X"},'
                        '"queue":"q","worker":"bad"}')
    response = viewer.get(url("failed"))
    body = response.content.decode()
    assert response.status_code == 200
    for text in ("BadJob", "bad thing é", "ArgumentError", "exp2.rb:25", "vm:6831",
                 "2026/11/22 08:59:40", "NoWorker", "line2", "rubbish", "not json at all",
                 "Retried 2026/11/22 09:00:00 CET"):
        assert text in body, text


def test_retry_one_pushes_the_job_and_stamps_the_entry(operator, resque):
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    response = csrf_post(operator, url("failed_retry"),
                         {"index": 0, "digest": failures.entry_digest(RUBY_FAILURE)})
    assert response.status_code == 302
    assert resque.client.lrange(resque.key("queue", "low"), 0, -1) == [
        '{"class":"BadJob","args":[42]}']
    assert "low" in resque.client.smembers(resque.key("queues"))
    entry = json.loads(resque.client.lindex(resque.key("failed"), 0))
    assert list(entry)[-1] == "retried_at" and entry["retried_at"].endswith(" UTC")
    assert LogEntry.objects.filter(change_message__contains="Retried failure #0").exists()


def test_remove_one_asks_then_removes(operator, resque):
    resque.client.rpush(resque.key("failed"), failure_json(0), RUBY_FAILURE, failure_json(2))
    digest = failures.entry_digest(RUBY_FAILURE)
    confirm = operator.get(url("failed_remove") + f"?index=1&digest={digest}")
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    assert resque.client.llen(resque.key("failed")) == 3
    response = csrf_post(operator, url("failed_remove"), {"index": 1, "digest": digest})
    assert response.status_code == 302
    assert resque.client.lrange(resque.key("failed"), 0, -1) == [failure_json(0),
                                                                 failure_json(2)]


def test_shifted_index_is_refused(operator, resque):
    """The page showed entry #1; someone removed #0 meanwhile, so #1 is now another entry."""
    resque.client.rpush(resque.key("failed"), failure_json(0), failure_json(1), failure_json(2))
    shown = failures.entry_digest(failure_json(1))
    resque.client.lpop(resque.key("failed"))
    for name in ("failed_remove", "failed_retry"):
        response = csrf_post(operator, url(name), {"index": 1, "digest": shown})
        assert response.status_code == 302
        message = [str(m) for m in response.wsgi_request._messages]
        assert any("moved" in m for m in message), message
    assert resque.client.lrange(resque.key("failed"), 0, -1) == [failure_json(1),
                                                                 failure_json(2)]
    assert resque.client.llen(resque.key("queue", "demo")) == 0


def test_retry_all_clear_retried_and_clear(operator, resque):
    resque.client.rpush(resque.key("failed"), *[failure_json(n) for n in range(3)])
    assert csrf_post(operator, url("failed_retry_all"), page=url("failed")).status_code == 302
    assert resque.client.llen(resque.key("queue", "demo")) == 3
    resque.client.rpush(resque.key("failed"), failure_json(3))
    assert operator.get(url("failed_clear_retried")).status_code == 200  # confirmation
    assert resque.client.llen(resque.key("failed")) == 4
    csrf_post(operator, url("failed_clear_retried"))
    assert resque.client.lrange(resque.key("failed"), 0, -1) == [failure_json(3)]
    assert "Delete all 1 entries" in operator.get(url("failed_clear")).content.decode()
    csrf_post(operator, url("failed_clear"))
    assert not resque.client.exists(resque.key("failed"))
    messages = list(LogEntry.objects.values_list("change_message", flat=True))
    assert len(messages) == 3 and any("Cleared the failed list" in m for m in messages)


def test_failed_next_parameter_cannot_redirect_elsewhere(operator, resque):
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    response = csrf_post(operator, url("failed_retry"), {
        "index": 0, "digest": failures.entry_digest(RUBY_FAILURE),
        "next": "https://evil.example/"})
    assert response["Location"] == url("failed")
    response = csrf_post(operator, url("failed_retry"), {
        "index": 0, "digest": "x", "next": url("failed") + "?page=2"})
    assert response["Location"] == url("failed") + "?page=2"


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


def test_remove_confirmation_names_the_entry_or_reports_a_move(operator, resque):
    resque.client.rpush(resque.key("failed"), failure_json(0), RUBY_FAILURE)
    digest = failures.entry_digest(RUBY_FAILURE)
    body = operator.get(url("failed_remove") + f"?index=1&digest={digest}").content.decode()
    assert "BadJob on low: ArgumentError" in body
    resque.client.lpop(resque.key("failed"))
    response = operator.get(url("failed_remove") + f"?index=1&digest={digest}")
    assert response.status_code == 302 and response["Location"] == url("failed")


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
