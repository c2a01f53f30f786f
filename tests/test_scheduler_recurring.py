"""Recurring schedules: cron, intervals, time zones and DST with a fake clock; the leader
lock; validation (real Redis, real database). The YAML loader: test_scheduler_yaml.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from resque_pool.resque import wire
from resque_pool.scheduler import recurring, timing
from resque_pool.scheduler.models import Schedule


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# -- timing (pure) ---------------------------------------------------------------------


def test_cron_in_a_zone_and_with_a_zone_inside_the_string():
    after = utc(2026, 1, 10, 12, 0)
    assert timing.next_cron("0 9 * * *", "Europe/Paris", after) == utc(2026, 1, 11, 8, 0)
    assert timing.next_cron("0 9 * * * Asia/Tokyo", "Europe/Paris", after) == utc(2026, 1, 11, 0)


def test_cron_with_a_seconds_field_first_as_rufus():
    after = utc(2026, 1, 10, 12, 0, 1)
    assert timing.next_cron("*/15 * * * * *", "UTC", after) == utc(2026, 1, 10, 12, 0, 15)


def test_dst_spring_forward_runs_a_skipped_time_right_after_the_jump():
    # Paris, 2026-03-29: 02:00 -> 03:00. 02:30 does not exist that day.
    run = timing.next_cron("30 2 * * *", "Europe/Paris", utc(2026, 3, 28, 12))
    assert run == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert timing.next_cron("30 2 * * *", "Europe/Paris", run) == utc(2026, 3, 30, 0, 30)


def test_dst_fall_back_runs_a_repeated_time_once():
    # New York, 2026-11-01: 02:00 EDT -> 01:00 EST. 01:30 happens twice; run once.
    first = timing.next_cron("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12))
    assert first == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert timing.next_cron("30 1 * * *", "America/New_York", first) == utc(2026, 11, 2, 6, 30)
    # Asked during the repeated hour (01:10 EST), the next run is the next day.
    assert timing.next_cron("30 1 * * *", "America/New_York", utc(2026, 11, 1, 6, 10)) == utc(
        2026, 11, 2, 6, 30
    )


def test_bad_cron_and_zones_are_clear_errors():
    for bad, reason in (
        ("61 * * * *", "Bad minute"),
        ("* * *", "5 fields"),
        ("0 5 * * * Mars/Olympus", "unknown time zone"),
    ):
        with pytest.raises(timing.ScheduleError, match=reason):
            timing.check_cron(bad)
    with pytest.raises(timing.ScheduleError, match="unknown time zone"):
        timing.zone("Mars/Olympus")


def test_rufus_durations():
    assert timing.parse_duration("30s") == 30
    assert timing.parse_duration("1h30m") == 5400
    assert timing.parse_duration("2d") == 172800
    assert timing.parse_duration("1w") == 604800
    assert timing.parse_duration(45) == 45
    for bad in ("", "soon", "0s", "5x"):
        with pytest.raises(timing.ScheduleError):
            timing.parse_duration(bad)


# -- validation ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "Bad minute"),
        ({"cron": "", "interval": None}, "cron", "Give a cron expression or an interval."),
        ({"cron": "* * * * *", "interval": 5}, "cron", "not both"),
        ({"job_name": "Nope"}, "job_name", "No job is registered as 'Nope'"),
        ({"args": {"a": 1}}, "args", "JSON list"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "unknown time zone"),
        ({"job_name": "Sleep", "args": [1, 2]}, "job_name", "cannot take 2 argument"),
        ({"queue": "bad queue"}, "job_name", ""),
    ],
)
def test_schedule_validation(fields, field, message):
    from django.core.exceptions import ValidationError

    values = {"name": "s", "cron": "* * * * *", "job_name": "Record", "args": ["x"], **fields}
    with pytest.raises(ValidationError) as caught:
        Schedule(**values).full_clean()
    assert field in caught.value.message_dict
    assert message in " ".join(caught.value.message_dict[field])


@pytest.mark.django_db
def test_a_job_only_ruby_knows_is_valid_with_a_queue():
    Schedule(name="r", interval=60, job_name="Ruby::Job", queue="ruby", args=[1]).full_clean()


# -- firing with a fake clock ----------------------------------------------------------


def at(moment: datetime) -> float:
    return moment.timestamp()


def make(**fields) -> Schedule:
    values = {"name": "s", "cron": "0 * * * *", "job_name": "Record", "args": ["x"], **fields}
    schedule = Schedule.objects.create(**values)
    return schedule


def created_at(schedule: Schedule, moment: datetime) -> None:
    Schedule.objects.filter(pk=schedule.pk).update(updated_at=moment)


def queued(resque, queue="demo") -> list[str]:
    return resque.client.lrange(resque.key("queue", queue), 0, -1)


@pytest.mark.django_db
def test_an_hourly_schedule_fires_once_per_slot_and_records_the_run_as_ruby(resque):
    schedule = make()
    created_at(schedule, utc(2026, 5, 1, 9, 40))
    engine = recurring.Recurring()
    assert engine.tick(at(utc(2026, 5, 1, 9, 59, 59))) == 0
    assert engine.tick(at(utc(2026, 5, 1, 10, 0, 0))) == 1
    assert engine.tick(at(utc(2026, 5, 1, 10, 0, 1))) == 0
    assert engine.tick(at(utc(2026, 5, 1, 10, 59, 0))) == 0
    assert engine.tick(at(utc(2026, 5, 1, 11, 0, 0))) == 1
    assert queued(resque) == ['{"class":"Record","args":["x"]}'] * 2
    assert resque.client.smembers(resque.key("queues")) == {"demo"}
    assert resque.client.llen(resque.key("wakeup", "demo")) == 2  # one per run pushed
    # Ruby's Time#to_s in delayed:last_enqueued_at, read back as the last run.
    text = resque.client.hget(resque.key("delayed:last_enqueued_at"), "s")
    assert wire.parse_time(text) == utc(2026, 5, 1, 11, 0, 0)
    assert recurring.last_runs() == {"s": utc(2026, 5, 1, 11, 0, 0)}


@pytest.mark.django_db
def test_missed_runs_are_coalesced_into_one(resque):
    schedule = make()
    created_at(schedule, utc(2026, 5, 1, 9, 40))
    engine = recurring.Recurring()
    assert engine.tick(at(utc(2026, 5, 1, 10, 0))) == 1
    # No scheduler from 10:30 to 15:20: the runs at 11, 12, 13, 14, 15 were missed.
    assert engine.tick(at(utc(2026, 5, 1, 15, 20))) == 1
    assert engine.tick(at(utc(2026, 5, 1, 15, 20, 1))) == 0
    assert engine.tick(at(utc(2026, 5, 1, 16, 0))) == 1
    assert len(queued(resque)) == 3


@pytest.mark.django_db
def test_an_edit_starts_the_schedule_afresh(resque):
    schedule = make()
    created_at(schedule, utc(2026, 5, 1, 9, 40))
    engine = recurring.Recurring()
    engine.tick(at(utc(2026, 5, 1, 10, 0)))
    created_at(schedule, utc(2026, 5, 1, 15, 10))  # edited (or re-enabled) at 15:10
    assert engine.tick(at(utc(2026, 5, 1, 15, 20))) == 0
    assert engine.tick(at(utc(2026, 5, 1, 16, 0))) == 1


@pytest.mark.django_db
def test_disabled_schedules_do_not_fire(resque):
    schedule = make(enabled=False)
    created_at(schedule, utc(2026, 5, 1, 9, 40))
    assert recurring.Recurring().tick(at(utc(2026, 5, 1, 10, 0))) == 0
    assert queued(resque) == []


@pytest.mark.django_db
def test_intervals(resque):
    schedule = make(cron="", interval=30, name="i")
    created_at(schedule, utc(2026, 5, 1, 10, 0, 0))
    engine = recurring.Recurring()
    assert engine.tick(at(utc(2026, 5, 1, 10, 0, 29))) == 0
    assert engine.tick(at(utc(2026, 5, 1, 10, 0, 30))) == 1
    assert engine.tick(at(utc(2026, 5, 1, 10, 0, 59))) == 0
    assert engine.tick(at(utc(2026, 5, 1, 10, 1, 0))) == 1


@pytest.mark.django_db
def test_skip_if_the_previous_run_is_still_queued(resque):
    schedule = make(skip_if_queued=True)
    created_at(schedule, utc(2026, 5, 1, 9, 40))
    engine = recurring.Recurring()
    assert engine.tick(at(utc(2026, 5, 1, 10, 0))) == 1
    assert engine.tick(at(utc(2026, 5, 1, 11, 0))) == 0  # 10:00's run still waits: skipped
    assert engine.tick(at(utc(2026, 5, 1, 11, 30))) == 0  # and the 11:00 slot stays skipped
    resque.client.delete(resque.key("queue", "demo"))  # a worker took it
    assert engine.tick(at(utc(2026, 5, 1, 12, 0))) == 1
    assert len(queued(resque)) == 1


@pytest.mark.django_db
def test_dst_day_with_a_fake_clock(resque):
    schedule = make(cron="30 2 * * *", time_zone="Europe/Paris")
    created_at(schedule, utc(2026, 3, 28, 12))
    engine = recurring.Recurring()
    assert engine.tick(at(utc(2026, 3, 29, 0, 59))) == 0
    assert engine.tick(at(utc(2026, 3, 29, 1, 0))) == 1  # 03:00 CEST, right after the jump
    assert engine.tick(at(utc(2026, 3, 29, 23, 0))) == 0
    assert engine.tick(at(utc(2026, 3, 30, 0, 30))) == 1


@pytest.mark.django_db
def test_only_the_leader_fires_and_a_lost_lock_fences_it(resque):
    schedule = make()
    created_at(schedule, utc(2026, 5, 1, 9, 40))
    leader, follower = recurring.Recurring(), recurring.Recurring()
    follower.leadership.me = "otherhost:1"
    assert leader.tick(at(utc(2026, 5, 1, 10, 0))) == 1
    assert follower.tick(at(utc(2026, 5, 1, 11, 0))) == 0
    assert resque.client.get(resque.key("resque_pool:scheduler_leader")) == leader.leadership.me
    # The lock changes hands behind the leader's back (it stalled past the expiry).
    resque.client.set(resque.key("resque_pool:scheduler_leader"), "otherhost:1")
    assert leader.fire(schedule, int(at(utc(2026, 5, 1, 11))), utc(2026, 5, 1, 11)) == 0
    assert leader.leadership.leading is False
    assert len(queued(resque)) == 1
    assert follower.tick(at(utc(2026, 5, 1, 11, 0))) == 1
    # A clean exit releases the lock only if it is ours.
    leader.stop()
    assert resque.client.get(resque.key("resque_pool:scheduler_leader")) == "otherhost:1"
    follower.stop()
    assert resque.client.get(resque.key("resque_pool:scheduler_leader")) is None


@pytest.mark.django_db
def test_the_leader_lock_expires_after_the_setting(resque, settings):
    settings.RESQUE_SCHEDULER_LEADER_TTL = 3
    engine = recurring.Recurring()
    assert engine.leadership.hold()
    ttl = resque.client.pttl(resque.key("resque_pool:scheduler_leader"))
    assert 2000 < ttl <= 3000


@pytest.mark.django_db
def test_run_now_pushes_without_counting_as_a_scheduled_run(resque):
    schedule = make(name="now", args=["n"])
    assert recurring.run_now(schedule) == "demo"
    assert queued(resque) == ['{"class":"Record","args":["n"]}']
    assert recurring.last_runs() == {}


def test_timedelta_helpers_are_utc():
    assert timing.next_interval(30, utc(2026, 1, 1)) == utc(2026, 1, 1) + timedelta(seconds=30)
