"""The dashboard's failed list: newest-first pagination, class filter, Ruby-written and
broken entries, retry/remove one (with the shifted-index guard), retry all, clear."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry

from resque_pool.dashboard import failures
from tests.support.admin import (
    RUBY_FAILURE,
    csrf_post,
    failure_json,
    url,
)

pytestmark = pytest.mark.django_db


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
    resque.client.rpush(
        resque.key("failed"),
        *[failure_json(n, "Even" if n % 2 == 0 else "Odd") for n in range(100)],
    )
    response = viewer.get(url("failed") + "?class=Odd&page=2")
    rows = response.context["rows"]
    assert response.context["total"] == 50
    assert [r["index"] for r in rows] == list(range(59, 19, -2))
    assert all(r["class"] == "Odd" for r in rows)


def test_failed_page_renders_ruby_and_broken_entries(viewer, resque):
    resque.client.rpush(
        resque.key("failed"),
        RUBY_FAILURE,
        '{"payload":{"class":"NoWorker","args":[]},"exception":"type",'
        '"error":"type: <class \'ValueError\'>","backtrace":"line1\\nline2",'
        '"failed_at":"2026/11/22 08:59:40"}',
        '{"failed_at":"rubbish","payload":"raw text"}',
        "not json at all",
        '{"retried_at":"2026/11/22 09:00:00 CET","payload":{"class":"X"},'
        '"queue":"q","worker":"bad"}',
    )
    response = viewer.get(url("failed"))
    body = response.content.decode()
    assert response.status_code == 200
    for text in (
        "BadJob",
        "bad thing é",
        "ArgumentError",
        "exp2.rb:25",
        "vm:6831",
        "2026/11/22 08:59:40",
        "NoWorker",
        "line2",
        "rubbish",
        "not json at all",
        "Retried 2026-11-22 08:00:00 UTC",  # "2026/11/22 09:00:00 CET", in one format
    ):
        assert text in body, text


def test_retry_one_pushes_the_job_and_stamps_the_entry(operator, resque):
    resque.client.rpush(resque.key("failed"), RUBY_FAILURE)
    response = csrf_post(
        operator, url("failed_retry"), {"index": 0, "digest": failures.entry_digest(RUBY_FAILURE)}
    )
    assert response.status_code == 302
    assert resque.client.lrange(resque.key("queue", "low"), 0, -1) == [
        '{"class":"BadJob","args":[42]}'
    ]
    assert "low" in resque.client.smembers(resque.key("queues"))
    assert resque.client.llen(resque.key("wakeup", "low")) == 1  # an idle worker takes it now
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
    assert resque.client.lrange(resque.key("failed"), 0, -1) == [failure_json(0), failure_json(2)]


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
    assert resque.client.lrange(resque.key("failed"), 0, -1) == [failure_json(1), failure_json(2)]
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
    response = csrf_post(
        operator,
        url("failed_retry"),
        {
            "index": 0,
            "digest": failures.entry_digest(RUBY_FAILURE),
            "next": "https://evil.example/",
        },
    )
    assert response["Location"] == url("failed")
    response = csrf_post(
        operator,
        url("failed_retry"),
        {"index": 0, "digest": "x", "next": url("failed") + "?page=2"},
    )
    assert response["Location"] == url("failed") + "?page=2"


def test_remove_confirmation_names_the_entry_or_reports_a_move(operator, resque):
    resque.client.rpush(resque.key("failed"), failure_json(0), RUBY_FAILURE)
    digest = failures.entry_digest(RUBY_FAILURE)
    body = operator.get(url("failed_remove") + f"?index=1&digest={digest}").content.decode()
    assert "BadJob on low: ArgumentError" in body
    resque.client.lpop(resque.key("failed"))
    response = operator.get(url("failed_remove") + f"?index=1&digest={digest}")
    assert response.status_code == 302 and response["Location"] == url("failed")


def test_worker_link_only_for_registered_workers(viewer, resque):
    resque.client.sadd(resque.key("workers"), "py:1:demo")
    resque.client.rpush(resque.key("failed"), failure_json(0), RUBY_FAILURE)
    body = viewer.get(url("failed")).content.decode()
    assert url("worker", "py:1:demo") in body
    assert url("worker", "vm:6831:high,low") not in body and "vm:6831" in body


def test_bulk_actions_act_on_every_page_of_the_filter_and_ask_first(operator, resque):
    """Filtered by class, "retry these" and "remove these" reach the class's entries on
    every page (not only the one shown, not other classes), after saying how many."""
    entries = [failure_json(n, "Odd" if n % 2 else "Even") for n in range(120)]
    entries += [failure_json(n, "Odd", queue="other") for n in range(120, 125)]
    resque.client.rpush(resque.key("failed"), *entries)
    page = operator.get(url("failed") + "?class=Odd")
    body = page.content.decode()
    assert page.context["total"] == 65 and "Retry these 65…" in body
    retry_link = url("failed_retry_all") + "?class=Odd"
    assert retry_link in body
    confirm = operator.get(retry_link).content.decode()
    assert "Retry 65 failed job(s) of class Odd?" in confirm
    assert resque.client.llen(resque.key("queue", "demo")) == 0  # asking changed nothing
    response = csrf_post(operator, retry_link, page=url("failed"))
    assert response["Location"] == url("failed") + "?class=Odd"
    assert resque.client.llen(resque.key("queue", "demo")) == 60
    assert resque.client.llen(resque.key("queue", "other")) == 5
    assert LogEntry.objects.get().change_message == "Retried 65 failure(s) of class Odd"
    # Class and queue together.
    remove_link = url("failed_clear") + "?class=Odd&queue=demo"
    confirm = operator.get(remove_link).content.decode()
    assert "Remove the 60 failure(s) of class Odd on queue demo" in confirm
    csrf_post(operator, remove_link, page=url("failed"))
    left = [json.loads(raw) for raw in resque.client.lrange(resque.key("failed"), 0, -1)]
    assert len(left) == 65
    assert {(e["payload"]["class"], e["queue"]) for e in left} == {
        ("Even", "demo"),
        ("Odd", "other"),
    }
    assert "Removed 60 failure(s) of class Odd on queue demo" in LogEntry.objects.values_list(
        "change_message", flat=True
    )


def test_clear_retried_follows_the_filter(operator, resque):
    resque.client.rpush(
        resque.key("failed"),
        failure_json(0, "A", retried_at="2026/11/22 09:00:00 UTC"),
        failure_json(1, "B", retried_at="2026/11/22 09:00:00 UTC"),
        failure_json(2, "A"),
    )
    confirm = operator.get(url("failed_clear_retried") + "?class=A").content.decode()
    assert "Remove the 1 failure(s) of class A already retried?" in confirm
    csrf_post(operator, url("failed_clear_retried") + "?class=A", page=url("failed"))
    assert resque.client.lrange(resque.key("failed"), 0, -1) == [
        failure_json(1, "B", retried_at="2026/11/22 09:00:00 UTC"),
        failure_json(2, "A"),
    ]
