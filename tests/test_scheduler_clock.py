"""One clock for schedules: real ``manage.py resque_scheduler`` processes whose clock is
wrong (Debian's libfaketime preloaded into the Python process only; redis-server keeps the
true time) neither silence the schedules nor fire them late or early."""

from __future__ import annotations

import glob
import os
import signal
import socket
import time

import pytest

from resque_pool.resque import wire
from resque_pool.scheduler import delayed
from resque_pool.scheduler.models import Schedule
from tests.support.common import wait_until

# A short leader lock, so that a standby takes over within the tests' bounds.
LEADER_TTL = {"RESQUE_SCHEDULER_LEADER_TTL": 2.0}
SLOTS = "resque_pool:schedule_slots"
LAST = "delayed:last_enqueued_at"


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.skip(
            "libfaketime is not installed (Debian package 'faketime'; scripts/bootstrap.sh "
            "installs it when run as root)"
        )
    return found[0]


def wrong_clock(offset: str) -> dict[str, str]:
    """Environment for a process whose wall clock is off by ``offset`` (``+400d``, ``-1h``).
    The monotonic clock stays true, so its waits and timeouts behave."""
    return {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }


def leader(resque) -> str | None:
    return resque.client.get(resque.key("resque_pool:scheduler_leader"))


def own_id(process) -> str:
    return f"{socket.gethostname()}:{process.pid}"


def redis_now(resque) -> float:
    seconds, micros = resque.client.time()
    return seconds + micros / 1e6


def runs(resque, queue: str = "clock") -> list[str]:
    return resque.client.lrange(resque.key("queue", queue), 0, -1)


def stop(process) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0


@pytest.fixture
def every_two_seconds(transactional_db):
    return Schedule.objects.create(
        name="two", interval=2, job_name="Record", queue="clock", args=["t"]
    )


def test_the_faked_clock_is_really_wrong_in_the_process(resque, run_manage):
    # The premise of the tests below: the preload moves the Python process's clock and
    # only its clock (Redis answers the true time).
    result = run_manage(
        "shell", "-c", "import time; print(int(time.time()))", env=wrong_clock("+400d")
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) - redis_now(resque) > 399 * 86400


def test_a_scheduler_400_days_ahead_leaves_every_schedule_on_time(
    resque, spawn_manage, database_env, process_settings, every_two_seconds
):
    env = {**process_settings(**LEADER_TTL), **database_env}
    ahead = spawn_manage("resque_scheduler", env={**env, **wrong_clock("+400d")})
    wait_until(lambda: leader(resque) == own_id(ahead), 30, message="the wrong clock to lead")
    wait_until(lambda: len(runs(resque)) >= 2, 30, message="runs from the scheduler ahead")
    stop(ahead)  # a few seconds as the leader, as in the issue
    # What it stored is on Redis's clock, not 400 days ahead.
    slot = int(resque.client.hget(resque.key(SLOTS), "two"))
    assert abs(slot - redis_now(resque)) < 30
    last = wire.parse_time(resque.client.hget(resque.key(LAST), "two"))
    assert abs(last.timestamp() - redis_now(resque)) < 30, last
    # A correct scheduler then fires on time: its next run within one interval or so.
    before = len(runs(resque))
    stopped_at = time.monotonic()
    correct = spawn_manage("resque_scheduler", env=env)
    wait_until(lambda: len(runs(resque)) > before, 30, message="a run from the correct one")
    # Start-up (Django, the lock) plus one 2 s interval; nowhere near 400 days.
    assert time.monotonic() - stopped_at < 15
    stop(correct)


def test_a_leader_an_hour_behind_fires_on_time(
    resque, spawn_manage, database_env, process_settings, every_two_seconds
):
    env = {**process_settings(**LEADER_TTL), **database_env}
    behind = spawn_manage("resque_scheduler", env={**env, **wrong_clock("-1h")})
    wait_until(lambda: leader(resque) == own_id(behind), 30, message="the slow clock to lead")
    correct = spawn_manage("resque_scheduler", env=env)  # stands by
    first = len(wait_until(lambda: runs(resque), 30, message="a first run"))
    started = time.monotonic()
    wait_until(lambda: len(runs(resque)) >= first + 3, 30, message="three more runs")
    elapsed = time.monotonic() - started
    # Every 2 s: three runs in about 6 s, on Redis's clock (not an hour late).
    assert 3.0 < elapsed < 10, elapsed
    assert leader(resque) == own_id(behind)  # the slow one did the firing
    # The run is recorded at Redis's time, not an hour back.
    last = wire.parse_time(resque.client.hget(resque.key(LAST), "two"))
    assert abs(last.timestamp() - redis_now(resque)) < 30, last
    stop(behind)
    stop(correct)


def test_wrong_clocks_move_delayed_jobs_on_redis_time(
    resque, spawn_manage, database_env, process_settings
):
    env = {**process_settings(**LEADER_TTL), **database_env}
    now = redis_now(resque)
    delayed.enqueue_at(int(now) + 3600, "Record", "in an hour", queue="clock")
    delayed.enqueue_at(int(now) + 3, "Record", "soon", queue="clock")
    ahead = spawn_manage("resque_scheduler", env={**env, **wrong_clock("+400d")})
    behind = spawn_manage("resque_scheduler", env={**env, **wrong_clock("-1h")})
    wait_until(
        lambda: runs(resque) == ['{"class":"Record","args":["soon"]}'],
        30,
        message="the job due in 3 s, moved on time",
    )
    assert redis_now(resque) >= int(now) + 3
    time.sleep(2)  # both are looping: neither moves the job due in an hour early
    assert runs(resque) == ['{"class":"Record","args":["soon"]}']
    assert delayed.delayed_count() == 1
    for process in (ahead, behind):
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(20) == 0
