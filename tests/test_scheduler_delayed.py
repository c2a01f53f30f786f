"""Delayed jobs: resque-scheduler's keys and bytes, Django's datetime rules (real Redis)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from resque_pool import job
from resque_pool.errors import UnknownJob
from resque_pool.resque.producer import EnqueuedJob
from resque_pool.resque.registry import registry
from resque_pool.scheduler import delayed
from resque_pool.scheduler.delayed import DelayedJob


@pytest.fixture
def jobs():
    """Jobs registered by a test are removed after it."""
    before = set(registry.names())
    calls: list = []
    yield calls
    for name in set(registry.names()) - before:
        registry.remove(name)


@pytest.fixture
def archive(jobs):
    @job(queue="file_serve", name="Archive")
    class Archive:
        @staticmethod
        def perform(repo_id, branch="master"):
            jobs.append(repo_id)

    return Archive


def test_enqueue_at_writes_resque_schedulers_three_keys(resque, archive):
    when = datetime(2099, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    ts = int(when.timestamp())
    result = archive.enqueue_at(when, 44, "masterbrew")
    item = '{"class":"Archive","args":[44,"masterbrew"],"queue":"file_serve"}'
    assert result == DelayedJob(timestamp=ts, queue="file_serve", item=item)
    assert resque.client.lrange(resque.key("delayed", str(ts)), 0, -1) == [item]
    assert resque.client.smembers(resque.key("timestamps", item)) == {f"delayed:{ts}"}
    assert resque.client.zrange(resque.key("delayed_queue_schedule"), 0, -1, withscores=True) == [
        (str(ts), float(ts))
    ]
    # Nothing on the queue yet, and the queue is not even known.
    assert resque.client.llen(resque.key("queue", "file_serve")) == 0
    assert resque.client.smembers(resque.key("queues")) == set()


def test_reverse_index_stores_the_unnamespaced_list_key(resque, archive):
    # resque-scheduler writes "delayed:<ts>" through redis-namespace as a *value*: no prefix.
    when = datetime(2099, 1, 1, tzinfo=UTC)
    archive.enqueue_at(when, 1)
    item = '{"class":"Archive","args":[1],"queue":"file_serve"}'
    assert resque.client.smembers(resque.key("timestamps", item)) == {
        f"delayed:{int(when.timestamp())}"
    }


def test_enqueue_in_by_name_with_queue_for_a_job_only_ruby_knows(resque, jobs):
    before = int(time.time())
    result = delayed.enqueue_in(timedelta(minutes=5), "Ruby::Only", "é/ü", 2.5, queue="ruby")
    assert isinstance(result, DelayedJob)
    assert before + 300 <= result.timestamp <= int(time.time()) + 300
    assert result.item == '{"class":"Ruby::Only","args":["é/ü",2.5],"queue":"ruby"}'
    assert delayed.delayed_count() == 1


def test_unknown_name_without_queue_is_refused(resque, jobs):
    with pytest.raises(UnknownJob):
        delayed.enqueue_in(30, "Nope", 1)


def test_a_time_in_the_past_or_this_second_enqueues_at_once(resque, archive):
    result = archive.enqueue_at(datetime(2001, 1, 1, tzinfo=UTC), 7)
    assert isinstance(result, EnqueuedJob)
    assert resque.client.lrange(resque.key("queue", "file_serve"), 0, -1) == [
        '{"class":"Archive","args":[7]}'
    ]
    assert archive.enqueue_in(0, 8).queue == "file_serve"
    assert delayed.delayed_count() == 0
    assert resque.client.zcard(resque.key("delayed_queue_schedule")) == 0


def test_naive_datetime_is_read_in_the_default_time_zone_with_a_warning(resque, archive, settings):
    settings.USE_TZ = True
    settings.TIME_ZONE = "Europe/Paris"
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        result = archive.enqueue_at(datetime(2099, 7, 1, 12, 0), 1)
    assert result.at == datetime(2099, 7, 1, 10, 0, tzinfo=UTC)


def test_naive_datetime_without_use_tz_is_local_time_silently(resque, archive, settings, recwarn):
    settings.USE_TZ = False
    settings.TIME_ZONE = "America/New_York"
    result = archive.enqueue_at(datetime(2099, 1, 1, 12, 0), 1)
    assert result.at == datetime(2099, 1, 1, 17, 0, tzinfo=UTC)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_aware_datetime_in_any_zone(resque, archive):
    when = datetime(2099, 3, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert archive.enqueue_at(when, 1).at == datetime(2099, 3, 1, 0, 0, tzinfo=UTC)


def test_remove_delayed_removes_every_copy_and_reports_the_count(resque, archive):
    t1 = datetime(2099, 1, 1, tzinfo=UTC)
    t2 = t1 + timedelta(hours=1)
    archive.enqueue_at(t1, 44)
    archive.enqueue_at(t1, 44)
    archive.enqueue_at(t2, 44)
    archive.enqueue_at(t2, 45)
    assert delayed.scheduled_at("Archive", 44) == [t1, t2]
    assert archive.remove_delayed(44) == 3
    assert delayed.scheduled_at(archive, 44) == []
    assert delayed.delayed_count() == 1
    item44 = '{"class":"Archive","args":[44],"queue":"file_serve"}'
    assert not resque.client.exists(resque.key("timestamps", item44))
    assert delayed.remove_delayed("Archive", 44) == 0
    # Another queue is another item, as in Ruby's remove_delayed_in_queue.
    assert delayed.remove_delayed("Archive", 45, queue="other") == 0
    assert delayed.remove_delayed("Archive", 45, queue="file_serve") == 1


def test_listing_timestamps_and_items_a_page_at_a_time(resque, archive):
    base = datetime(2099, 1, 1, tzinfo=UTC)
    for hour in (3, 1, 2):
        archive.enqueue_at(base + timedelta(hours=hour), hour)
    archive.enqueue_at(base + timedelta(hours=1), 10)
    stamps = delayed.timestamps(0, 10)
    assert stamps == [int((base + timedelta(hours=h)).timestamp()) for h in (1, 2, 3)]
    assert delayed.timestamps(1, 1) == stamps[1:2]
    assert delayed.timestamp_count() == 3
    items = delayed.items_at(stamps[0], 0, 10)
    assert [(i.class_name, i.args, i.queue) for i in items] == [
        ("Archive", [1], "file_serve"),
        ("Archive", [10], "file_serve"),
    ]
    assert [i.args for i in delayed.items_at(stamps[0], 1, 1)] == [[10]]


def test_items_ruby_wrote_are_read_back(resque, jobs):
    # Exactly what resque-scheduler 5.0's delayed_push leaves in Redis.
    ts = 4102444800
    item = '{"class":"Mail::Deliver","args":[{"id":1}],"queue":"mail"}'
    resque.client.rpush(resque.key("delayed", str(ts)), item)
    resque.client.sadd(resque.key("timestamps", item), f"delayed:{ts}")
    resque.client.zadd(resque.key("delayed_queue_schedule"), {str(ts): ts})
    assert delayed.delayed_count() == 1
    assert delayed.scheduled_at("Mail::Deliver", {"id": 1}, queue="mail") == [
        datetime.fromtimestamp(ts, UTC)
    ]
    assert delayed.remove_delayed("Mail::Deliver", {"id": 1}, queue="mail") == 1


def test_schedule_hooks_run_and_can_cancel(resque, jobs):
    @job(queue="q", name="Hooked")
    class Hooked:
        @staticmethod
        def before_schedule_check(n):
            jobs.append(("before", n))
            return n != 0

        @staticmethod
        def after_schedule_log(n):
            jobs.append(("after", n))

        @staticmethod
        def perform(n):
            pass

    assert Hooked.enqueue_in(60, 0) is None
    assert Hooked.enqueue_in(60, 1) is not None
    assert jobs == [("before", 0), ("before", 1), ("after", 1)]
    assert delayed.delayed_count() == 1


def test_bad_when_and_bad_arguments(resque, archive):
    with pytest.raises(TypeError):
        archive.enqueue_at("tomorrow", 1)
    with pytest.raises(TypeError):
        archive.enqueue_in("30s", 1)
    with pytest.raises(ValueError, match="JSON"):
        archive.enqueue_in(30, object())
    assert delayed.delayed_count() == 0


# -- manage.py enqueue --in / --at ------------------------------------------------------


def test_parse_delay_units():
    from resque_pool.scheduler.when import parse_delay

    assert parse_delay("30").total_seconds() == 30
    assert parse_delay("30s").total_seconds() == 30
    assert parse_delay("1.5m").total_seconds() == 90
    assert parse_delay("2h").total_seconds() == 7200
    assert parse_delay("1D").total_seconds() == 86400
    for bad in ("", "-5", "5w", "s", "1h30m"):
        with pytest.raises(ValueError, match="--in"):
            parse_delay(bad)


def test_enqueue_in_from_the_shell_prints_the_utc_instant(resque, run_manage):
    before = int(time.time())
    result = run_manage("enqueue", "Sleep", "2.5", "--in", "2m")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["queue:   demo", 'delayed: {"class":"Sleep","args":[2.5],"queue":"demo"}']
    at = datetime.strptime(lines[2].split()[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + 120 <= at.timestamp() <= int(time.time()) + 120
    assert resque.client.zrange(resque.key("delayed_queue_schedule"), 0, -1) == [
        str(int(at.timestamp()))
    ]


def test_a_time_without_offset_is_read_in_the_current_time_zone(settings):
    from django.utils import timezone

    from resque_pool.scheduler.when import parse_at

    settings.TIME_ZONE = "Europe/Paris"
    assert parse_at("2099-07-01T09:00") == datetime(2099, 7, 1, 7, 0, tzinfo=UTC)
    with timezone.override("America/New_York"):
        assert parse_at("2099-01-01T09:00") == datetime(2099, 1, 1, 14, 0, tzinfo=UTC)
    assert parse_at("2099-07-01T09:00Z") == datetime(2099, 7, 1, 9, 0, tzinfo=UTC)


def test_enqueue_at_without_offset_from_the_shell(resque, run_manage):
    # testproject's TIME_ZONE is UTC.
    result = run_manage("enqueue", "Record", "x", "--at", "2099-07-01T09:00")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2] == "at:      2099-07-01T09:00:00Z"


def test_enqueue_at_with_offset_and_in_the_past(resque, run_manage):
    result = run_manage("enqueue", "Record", "x", "--at", "2099-12-01T09:00+01:00")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2] == "at:      2099-12-01T08:00:00Z"
    result = run_manage("enqueue", "Record", "y", "--at", "2001-01-01T00:00Z")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "queue:   demo",
        'payload: {"class":"Record","args":["y"]}',
        "at:      2001-01-01T00:00:00Z (already passed: enqueued now)",
    ]


def test_enqueue_later_errors_are_one_line(resque, run_manage):
    for args, message in (
        (["--in", "soon"], "--in 'soon': give a number of seconds"),
        (["--at", "tomorrow"], "--at 'tomorrow' is not an ISO 8601 time"),
    ):
        result = run_manage("enqueue", "Record", "x", *args)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [f"CommandError: {message}"] or (
            message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        ), result.stderr
    result = run_manage("enqueue", "Record", "x", "--in", "5s", "--at", "2099-01-01")
    assert result.returncode == 1  # one line, as every other refusal (issue 20)
    assert result.stderr.strip().splitlines() == ["CommandError: give --in or --at, not both"]
    assert resque.client.zcard(resque.key("delayed_queue_schedule")) == 0
