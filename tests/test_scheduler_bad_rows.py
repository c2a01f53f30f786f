"""Schedules that survive bad rows and damaged Redis values: one schedule's error is its
own (logged once with its name, shown on its admin row, the others fire); stored slots and
last runs written on a wrong clock are recomputed; the admin and the YAML loader refuse
absurd intervals and cron steps (real Redis, real database)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse

from resque_pool import job
from resque_pool.scheduler import recurring, timing
from resque_pool.scheduler.models import Schedule
from tests.support.admin import make_user

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
LIST = "admin:resque_pool_schedule_changelist"
ADD = "admin:resque_pool_schedule_add"


@job(queue="badrows", name="BadRowsHookFails")
class HookFails:
    """A job whose ``before_enqueue`` hook raises: its schedule cannot fire."""

    @staticmethod
    def before_enqueue_explode(*args):
        raise RuntimeError("the hook exploded")

    @staticmethod
    def perform(*args):
        pass


def make(name: str, **fields) -> Schedule:
    values = {"name": name, "interval": 30, "job_name": "Record", "args": [name], **fields}
    row = Schedule.objects.create(**values)
    Schedule.objects.filter(pk=row.pk).update(updated_at=T0)
    row.refresh_from_db()
    return row


def at(seconds: float) -> float:
    return T0.timestamp() + seconds


def queued(resque, queue: str = "demo") -> list[str]:
    return resque.client.lrange(resque.key("queue", queue), 0, -1)


def absurd_interval() -> int:
    """The interval the issue saved in the admin on SQLite; PostgreSQL's integer column
    cannot hold it."""
    if connection.vendor != "sqlite":
        pytest.skip("only SQLite stores an interval of 300,000,000,000 s (integer column)")
    return 300_000_000_000


# -- one bad schedule never stops the others --------------------------------------------


def test_an_absurd_interval_is_that_schedules_error_alone(resque, caplog):
    caplog.set_level(logging.ERROR, logger="resque_pool")
    make("good")
    make("absurd", interval=absurd_interval())
    engine = recurring.Recurring()
    assert engine.tick(at(30)) == 1
    assert engine.tick(at(60)) == 1
    assert queued(resque) == ['{"class":"Record","args":["good"]}'] * 2
    # Logged once with its name, not once a second.
    logged = [r.getMessage() for r in caplog.records if "absurd" in r.getMessage()]
    assert len(logged) == 1, logged
    assert "schedule absurd: cannot compute its next run: OverflowError" in logged[0]
    # Recorded for the admin's row.
    errors = recurring.schedule_errors()
    assert set(errors) == {"absurd"} and "OverflowError" in errors["absurd"]


def test_a_hook_that_raises_is_that_schedules_error_and_clears_when_fixed(resque, caplog):
    caplog.set_level(logging.INFO, logger="resque_pool")
    bad = make("hook", job_name="BadRowsHookFails")
    make("good")
    engine = recurring.Recurring()
    assert engine.tick(at(30)) == 1
    assert engine.tick(at(31)) == 0
    assert queued(resque, "badrows") == []
    assert recurring.schedule_errors() == {"hook": "RuntimeError: the hook exploded"}
    assert caplog.text.count("schedule hook: RuntimeError: the hook exploded") == 1
    # Fixed (another job): it fires, and the error is gone from the log and the admin.
    Schedule.objects.filter(pk=bad.pk).update(job_name="Record", updated_at=T0)
    assert engine.tick(at(32)) == 1
    assert recurring.schedule_errors() == {}
    assert "schedule hook works again" in caplog.text


def test_two_broken_schedules_are_each_logged_once(resque, caplog):
    caplog.set_level(logging.ERROR, logger="resque_pool")
    make("one", job_name="BadRowsHookFails")
    make("two", job_name="BadRowsHookFails")
    engine = recurring.Recurring()
    for second in range(30, 35):
        engine.tick(at(second))
    assert caplog.text.count("schedule one:") == 1
    assert caplog.text.count("schedule two:") == 1


def test_unreadable_stored_values_do_not_stop_any_schedule(resque):
    make("s")
    resque.client.hset(resque.key("resque_pool:schedule_slots"), "s", "not a number")
    resque.client.hset(resque.key("delayed:last_enqueued_at"), "s", "yesterday-ish")
    assert recurring.Recurring().tick(at(30)) == 1


def test_the_changelist_shows_the_error_on_the_row_and_never_fails(resque):
    make("good")
    make("absurd", interval=absurd_interval())
    client = Client()
    client.force_login(make_user("root", superuser=True))
    response = client.get(reverse(LIST))
    page = response.content.decode()
    assert response.status_code == 200
    assert "error: OverflowError: date value out of range" in page  # the admin's own reading
    # The leader's recorded error wins over the admin's own reading of the row.
    recurring.Recurring().tick(at(30))
    page = client.get(reverse(LIST)).content.decode()
    assert "error: cannot compute its next run: OverflowError" in page


# -- damaged slots and last runs (written on a wrong clock) ------------------------------


def test_a_slot_far_ahead_is_logged_once_and_recomputed(resque, caplog):
    caplog.set_level(logging.WARNING, logger="resque_pool")
    make("s")
    slots = resque.key("resque_pool:schedule_slots")
    resque.client.hset(slots, "s", int(at(400 * 86400)))  # a scheduler 400 days ahead
    engine = recurring.Recurring()
    assert engine.tick(at(10)) == 0  # counted from now (10 s) ...
    assert int(resque.client.hget(slots, "s")) == int(at(10))
    assert engine.tick(at(20)) == 0
    assert engine.tick(at(40)) == 1  # ... one interval later, on time
    assert int(resque.client.hget(slots, "s")) == int(at(40))
    assert engine.tick(at(70)) == 1
    warnings = [
        r.getMessage() for r in caplog.records if "ahead of Redis's clock" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("schedule s: stored slot 2027-06-05")


def test_a_ruby_last_run_far_ahead_does_not_silence_a_cron_schedule(resque, caplog):
    caplog.set_level(logging.WARNING, logger="resque_pool")
    make("hourly", interval=None, cron="0 * * * *")
    resque.client.hset(
        resque.key("delayed:last_enqueued_at"), "hourly", "2028-06-01 10:00:00 +0000"
    )
    engine = recurring.Recurring()
    assert engine.tick(at(600)) == 0
    assert engine.tick(at(3599)) == 0
    assert engine.tick(at(3600)) == 1  # 11:00, on time
    assert recurring.last_runs()["hourly"] == datetime(2026, 5, 1, 11, 0, tzinfo=UTC)
    assert caplog.text.count("stored last run 2028-06-01T10:00:00+00:00") == 1


def test_a_value_within_one_period_ahead_is_kept(resque):
    make("s")
    # 20 s ahead of a 30 s schedule: not damaged (another clock a little ahead), counted.
    resque.client.hset(resque.key("resque_pool:schedule_slots"), "s", int(at(30)))
    engine = recurring.Recurring()
    assert engine.tick(at(10)) == 0
    assert engine.tick(at(59)) == 0
    assert engine.tick(at(60)) == 1


def test_the_admin_counts_the_next_run_without_a_damaged_slot(resque):
    make("s", interval=3600)
    resque.client.hset(resque.key("resque_pool:schedule_slots"), "s", 32503680000)  # year 3000
    client = Client()
    client.force_login(make_user("root", superuser=True))
    page = client.get(reverse(LIST)).content.decode()
    assert "3000-01-01" not in page
    # Next run: within the hour on Redis's clock (this year, not year 3000).
    assert f"{datetime.now(UTC).year}-" in page or f"{datetime.now(UTC).year + 1}-01-01" in page


# -- refused in the admin and the YAML loader ---------------------------------------------


def form(**fields) -> dict:
    data = {
        "name": "every5",
        "cron": "",
        "interval": "5",
        "time_zone": "",
        "job_name": "Record",
        "queue": "",
        "args": '["x"]',
        "enabled": "on",
        "description": "",
    }
    data.update(fields)
    return data


@pytest.fixture
def root_client() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"interval": str(365 * 86400 + 1)}, "The interval is at most one year"),
        ({"interval": "300000000000"}, "The interval is at most one year"),
        (
            {"interval": "", "cron": "*/99999999999999999999 * * * *"},
            "Bad minute: the step 999999999999… is larger than the field&#x27;s range (0-59)",
        ),
        ({"interval": "", "cron": "0 */25 * * *"}, "Bad hour: the step 25"),
        ({"interval": "", "cron": "*/61 * * * * *"}, "Bad second: the step 61"),
    ],
)
def test_the_admin_refuses_absurd_timings(root_client, fields, message):
    response = root_client.post(reverse(ADD), form(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Schedule.objects.exists()


def test_steps_within_the_range_and_a_year_are_accepted(root_client):
    assert root_client.post(reverse(ADD), form(interval=str(365 * 86400))).status_code == 302
    response = root_client.post(reverse(ADD), form(name="c", interval="", cron="*/60 */24 * * *"))
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("timing_line", "message"),
    [
        ("every: 10000y", "The interval is at most one year"),
        ("every: 366d", "The interval is at most one year"),
        ('cron: "*/99999999999999999999 * * * *"', "Bad minute: the step"),
    ],
)
def test_the_yaml_loader_refuses_absurd_timings(tmp_path, timing_line, message):
    path = tmp_path / "schedule.yml"
    path.write_text(f"fine:\n  every: 5m\n  class: Noop\nbad:\n  {timing_line}\n  class: Noop\n")
    with pytest.raises(CommandError, match=message) as caught:
        call_command("load_resque_schedule", str(path))
    assert "bad: " in str(caught.value)
    assert not Schedule.objects.exists()


def test_check_interval_bounds():
    timing.check_interval(1)
    timing.check_interval(timing.MAX_INTERVAL)
    for bad in (0, 0.5, timing.MAX_INTERVAL + 1, float("inf")):
        with pytest.raises(timing.ScheduleError):
            timing.check_interval(bad)
