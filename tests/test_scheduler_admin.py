"""The Schedule admin: validation, last and next run, "run now" with the admin log."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from resque_pool.scheduler.models import Schedule
from tests.support.admin import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_csrf():
    client = Client(enforce_csrf_checks=False)
    client.force_login(make_user("root", superuser=True))
    return client


def form(**fields) -> dict:
    data = {
        "name": "nightly",
        "cron": "0 3 * * *",
        "interval": "",
        "time_zone": "Europe/Paris",
        "job_name": "Record",
        "queue": "",
        "args": '["x"]',
        "enabled": "on",
        "description": "",
    }
    data.update(fields)
    return data


ADD = "admin:resque_pool_schedule_add"
LIST = "admin:resque_pool_schedule_changelist"


def test_a_valid_schedule_is_saved(admin_client_csrf):
    response = admin_client_csrf.post(reverse(ADD), form())
    assert response.status_code == 302, response.content.decode()[:2000]
    row = Schedule.objects.get()
    assert (row.cron, row.time_zone, row.args) == ("0 3 * * *", "Europe/Paris", ["x"])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "0 3 * *"}, "expected 5 fields"),
        ({"job_name": "Nope"}, "No job is registered as &#x27;Nope&#x27;"),
        ({"args": '{"a": 1}'}, "JSON list"),
        ({"args": "[1,"}, "Enter a valid JSON"),
        ({"cron": "", "interval": ""}, "Give a cron expression or an interval."),
        ({"time_zone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(admin_client_csrf, fields, message):
    response = admin_client_csrf.post(reverse(ADD), form(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Schedule.objects.exists()


def test_changelist_shows_last_and_next_run(admin_client_csrf, resque):
    Schedule.objects.create(name="nightly", cron="0 3 * * *", job_name="Record", args=["x"])
    Schedule.objects.create(name="off", interval=60, job_name="Noop", enabled=False)
    resque.client.hset(
        resque.key("delayed:last_enqueued_at"), "nightly", "2026-11-20 03:00:00 +0000"
    )
    response = admin_client_csrf.get(reverse(LIST))
    page = response.content.decode()
    assert response.status_code == 200
    # Date and time may wrap apart, nothing else: "<date> <time zone>" (TIME_ZONE is UTC).
    assert '<span class="nowrap">2026-11-20</span> <span class="nowrap">03:00:00 UTC</span>' in page
    assert "(disabled)" in page
    assert "cron 0 3 * * *" in page and "every 60s" in page
    # The next run is a 03:00 after now.
    assert page.count('<span class="nowrap">03:00:00 UTC</span>') >= 2


def test_run_now_queues_the_job_and_logs_it(admin_client_csrf, resque):
    row = Schedule.objects.create(name="nightly", cron="0 3 * * *", job_name="Record", args=["x"])
    response = admin_client_csrf.post(
        reverse(LIST), {"action": "run_now", "_selected_action": [row.pk]}, follow=True
    )
    assert "Schedule nightly: queued on demo." in response.content.decode()
    assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [
        '{"class":"Record","args":["x"]}'
    ]
    entry = LogEntry.objects.get()
    assert entry.object_repr == "nightly" and "Run now: queued on demo." in entry.change_message


def test_run_now_needs_the_change_permission(resque):
    row = Schedule.objects.create(name="nightly", cron="0 3 * * *", job_name="Record", args=["x"])
    client = Client()
    client.force_login(make_user("viewer", "view_schedule"))
    response = client.post(reverse(LIST), {"action": "run_now", "_selected_action": [row.pk]})
    assert response.status_code in (200, 302, 403)
    assert resque.client.llen(resque.key("queue", "demo")) == 0
    assert not LogEntry.objects.exists()


# -- one message per mistake (issue 20) -----------------------------------------------------


def errors_of(response) -> list[str]:
    """The texts of the form's error lists, field and non-field."""
    import re

    return [
        re.sub(r"<[^>]+>", "", item).strip()
        for block in re.findall(
            r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S
        )
        for item in re.findall(r"<li>(.*?)</li>", block, re.S)
    ]


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_the_minimum_interval_has_one_message(admin_client_csrf, interval):
    response = admin_client_csrf.post(reverse(ADD), form(cron="", interval=interval))
    assert response.status_code == 200
    assert errors_of(response) == ["The interval is at least one second."]


def test_neither_cron_nor_interval_and_both_say_which(admin_client_csrf):
    neither = admin_client_csrf.post(reverse(ADD), form(cron="", interval=""))
    assert errors_of(neither) == ["Give a cron expression or an interval."]
    both = admin_client_csrf.post(reverse(ADD), form(interval="60"))
    assert errors_of(both) == ["Give either a cron expression or an interval, not both."]


def test_malformed_json_args_give_only_the_json_error(admin_client_csrf):
    response = admin_client_csrf.post(reverse(ADD), form(args="[1,"))
    assert errors_of(response) == ["Enter a valid JSON."]
    # Well-formed arguments the job cannot take still get the signature error.
    response = admin_client_csrf.post(reverse(ADD), form(args="[1, 2]"))
    [message] = errors_of(response)
    assert "cannot take 2 argument" in message


def test_run_now_keeps_the_schedules_own_name(admin_client_csrf, resque):
    row = Schedule.objects.create(name="every5", interval=5, job_name="Record", args=["x"])
    response = admin_client_csrf.post(
        reverse(LIST), {"action": "run_now", "_selected_action": [row.pk]}, follow=True
    )
    page = response.content.decode()
    assert "Schedule every5: queued on demo." in page
    assert "Every5" not in page
