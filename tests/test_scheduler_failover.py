"""Recurring schedules with real processes: leader failover after a SIGKILL, the lock
released on a clean exit, and admin edits reaching a running pool's scheduler."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from resque_pool.scheduler.models import Schedule
from tests.support.common import wait_until
from tests.support.pool_fixtures import write

SETTINGS = {"RESQUE_SCHEDULER_LEADER_TTL": 2}


def leader(resque) -> str | None:
    return resque.client.get(resque.key("resque_pool:scheduler_leader"))


def own_id(process) -> str:
    return f"{socket.gethostname()}:{process.pid}"


def entries(resque, queue: str = "nobody") -> list[str]:
    return resque.client.lrange(resque.key("queue", queue), 0, -1)


@pytest.fixture
def every_second(transactional_db):
    return Schedule.objects.create(
        name="tick", interval=1, job_name="Record", queue="nobody", args=["t"]
    )


def test_another_scheduler_takes_over_after_the_leader_is_killed(
    resque, spawn_manage, database_env, every_second
):
    first = spawn_manage("resque_scheduler", env=database_env, settings=SETTINGS)
    wait_until(lambda: leader(resque) == own_id(first), 30, message="the first to lead")
    second = spawn_manage("resque_scheduler", env=database_env, settings=SETTINGS)
    wait_until(lambda: len(entries(resque)) >= 2, 30, message="runs from the first leader")
    assert leader(resque) == own_id(first)  # the second waits
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    fired_before = len(entries(resque))
    wait_until(lambda: leader(resque) == own_id(second), 30, message="the second to take over")
    wait_until(
        lambda: len(entries(resque)) >= fired_before + 2, 30, message="runs from the new leader"
    )
    assert set(entries(resque)) == {'{"class":"Record","args":["t"]}'}
    second.send_signal(signal.SIGTERM)
    assert second.wait(20) == 0
    assert leader(resque) is None  # released on a clean exit: the next one need not wait


def test_schedule_edits_reach_a_running_pool(
    resque, start_pool, database_env, every_second, tmp_path
):
    config = write(tmp_path / "pool.yml", "demo: 1\n")
    pool = start_pool("-c", str(config), env=database_env, settings={"RESQUE_SCHEDULER": True})
    wait_until(lambda: entries(resque), 30, message="the schedule's first run")
    # An edit in the database, no signal: the next runs carry the new arguments.
    every_second.args = ["edited"]
    every_second.save()
    wait_until(
        lambda: '{"class":"Record","args":["edited"]}' in entries(resque),
        30,
        message="a run with the edited arguments",
    )
    every_second.enabled = False
    every_second.save()

    # Disabled: once the scheduler read the change, the queue stops growing.
    def stable():
        before = len(entries(resque))
        time.sleep(2.5)
        return len(entries(resque)) == before

    wait_until(stable, 30, 0, message="no more runs after disabling")
    pool.signal(signal.SIGQUIT)
    assert pool.wait_exit() == 0
