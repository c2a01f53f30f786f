"""An idle pool costs Redis almost nothing, whatever its size (docs/worker.md, "How an idle
worker waits"): its workers block on their wake-up keys with no time-out and never poll;
the manager polls once per INTERVAL for what other clients do, hears what we do on our
control channel, wakes the workers concerned locally, and writes their heartbeats.

Each promise is checked with real processes: with a poll far beyond the test's bound
(``SLOW_POLL``), whatever reaches the workers in time came through the channel; with a
short one, through the poll. The cost is a count of commands (``INFO commandstats``), not
a timing.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest

import tests.support.limits_jobs  # noqa: F401  (registers the jobs enqueued here)
from resque_pool import enqueue
from resque_pool.dashboard.data import pause_workers
from resque_pool.resque import control
from tests.support.common import wait_until
from tests.support.pool_fixtures import write
from tests.support.processes import alive, cmdline

SLOW_POLL = "600"
BOUND = 20.0


def done(resque) -> set[str]:
    return resque.client.smembers(resque.key("demo", "done"))


def start(start_pool, tmp_path, config: str, **kwargs):
    return start_pool("-c", str(write(tmp_path / "pool.yml", config)), **kwargs)


def titles_match(pids, pattern: str) -> bool:
    return all(re.fullmatch(pattern, cmdline(pid)) for pid in pids)


def subscribed(resque) -> None:
    """Until the manager listens on our control channel (it subscribes at its first poll)."""
    channel = control.channel()
    wait_until(
        lambda: dict(resque.client.pubsub_numsub(channel)).get(channel, 0) >= 1,
        timeout=BOUND,
        message="the manager subscribed to the control channel",
    )


def commands_run(client) -> int:
    stats = client.info("commandstats")
    return sum(entry["calls"] for name, entry in stats.items() if name != "cmdstat_info")


def test_a_pause_through_the_admin_reaches_every_idle_worker_without_a_poll(
    resque, start_pool, tmp_path
):
    pool = start(start_pool, tmp_path, "demo: 2\nother: 1\n", env={"INTERVAL": SLOW_POLL})
    workers = pool.wait_for_workers({"demo": 2, "other": 1})
    subscribed(resque)
    pause_workers(True)
    wait_until(
        lambda: titles_match(workers, r"resque-[\d.]+: Paused"),
        timeout=BOUND,
        message=lambda: f"every worker paused (titles {pool.titles()}, log:\n{pool.log()})",
    )
    enqueue("Record", "while-paused")
    time.sleep(1)
    assert done(resque) == set()
    pause_workers(False)
    wait_until(lambda: "while-paused" in done(resque), timeout=BOUND, message="job after resume")
    pool.wait_for_workers({"demo": 2, "other": 1})


def test_a_pause_by_another_client_reaches_idle_workers_at_the_poll(resque, start_pool, tmp_path):
    pool = start(start_pool, tmp_path, "demo: 2\n", env={"INTERVAL": "1"})
    workers = pool.wait_for_workers({"demo": 2})
    resque.client.set(resque.key("pause-all-workers"), "true")  # Ruby's pause
    wait_until(
        lambda: titles_match(workers, r"resque-[\d.]+: Paused"),
        timeout=BOUND,
        message=lambda: f"every worker paused (titles {pool.titles()}, log:\n{pool.log()})",
    )
    resque.client.delete(resque.key("pause-all-workers"))
    pool.wait_for_workers({"demo": 2}, timeout=BOUND)


def test_a_new_queue_of_ours_reaches_wildcard_workers_without_a_poll(resque, start_pool, tmp_path):
    pool = start(start_pool, tmp_path, "'*': 2\n", env={"INTERVAL": SLOW_POLL})
    wait_until(
        lambda: len([t for t in pool.titles().values() if "Waiting for" in t]) == 2,
        timeout=BOUND,
        message=lambda: f"two idle workers (titles {pool.titles()})",
    )
    subscribed(resque)
    enqueue("Record", "on-a-new-queue", queue="brand-new")
    wait_until(
        lambda: "on-a-new-queue" in done(resque), timeout=BOUND, message="job on a new queue"
    )


def test_a_raw_push_to_a_new_queue_reaches_wildcard_workers_at_the_poll(
    resque, start_pool, tmp_path
):
    pool = start(start_pool, tmp_path, "'*': 1\n", env={"INTERVAL": "1"})
    wait_until(
        lambda: any("Waiting for" in t for t in pool.titles().values()),
        timeout=BOUND,
        message=lambda: f"an idle worker (titles {pool.titles()})",
    )
    # As Ruby's Resque.enqueue does: SADD queues and RPUSH, no wake-up token.
    resque.client.sadd(resque.key("queues"), "ruby-made")
    resque.client.rpush(resque.key("queue", "ruby-made"), '{"class":"Record","args":["ruby"]}')
    wait_until(lambda: "ruby" in done(resque), timeout=BOUND, message="the foreign job")


def test_the_manager_writes_its_workers_heartbeats_and_registers_a_missing_one_again(
    resque, start_pool, tmp_path
):
    pool = start(
        start_pool,
        tmp_path,
        "demo: 2\n",
        env={"INTERVAL": SLOW_POLL},
        settings={"RESQUE_HEARTBEAT_INTERVAL": 1},
    )
    workers = pool.wait_for_workers({"demo": 2})
    ids = {f"{socket.gethostname()}:{pid}:demo" for pid in workers}
    heartbeats = resque.key("workers:heartbeat")
    first = resque.client.hmget(heartbeats, *sorted(ids))
    assert all(first)
    wait_until(
        lambda: resque.client.hmget(heartbeats, *sorted(ids)) != first,
        timeout=BOUND,
        message="heartbeats written again",
    )
    missing = sorted(ids)[0]
    resque.client.srem(resque.key("workers"), missing)
    wait_until(
        lambda: resque.client.sismember(resque.key("workers"), missing),
        timeout=BOUND,
        message="the missing worker registered again",
    )
    assert f"Worker {missing} was missing from workers; registered again" in pool.log()


def test_idle_workers_notice_a_killed_manager_without_a_poll(resque, start_pool, tmp_path):
    pool = start(start_pool, tmp_path, "demo: 2\n", env={"INTERVAL": SLOW_POLL})
    workers = list(pool.wait_for_workers({"demo": 2}))
    os.kill(pool.pid, signal.SIGKILL)
    pool.process.wait(10)
    wait_until(
        lambda: not any(alive(pid) for pid in workers),
        timeout=BOUND,
        message="the orphaned workers exited",
    )
    assert resque.client.scard(resque.key("workers")) == 0  # they unregistered


@pytest.mark.parametrize("workers", [16])
def test_an_idle_pool_with_its_scheduler_sends_under_3_commands_a_second(
    resque, start_pool, tmp_path, database_env, workers
):
    pool = start(
        start_pool,
        tmp_path,
        f"demo: {workers}\n",
        env={**database_env, "INTERVAL": "5"},
        settings={"RESQUE_SCHEDULER": True, "RESQUE_SCHEDULER_LEADER_TTL": 30},
    )
    pool.wait_for_workers({"demo": workers}, timeout=120)
    wait_until(
        lambda: any(t.startswith("resque-scheduler") for t in pool.titles().values()),
        timeout=BOUND,
        message="the scheduler child",
    )
    time.sleep(3)  # start-up's own commands (registration, first polls) are over
    window = 8.0
    before = commands_run(resque.client)
    time.sleep(window)
    sent = commands_run(resque.client) - before
    # Before (2026-12): 16 workers sent about 40 commands a second, each polling on its own.
    assert sent < 3 * window, f"{sent} commands in {window:.0f}s"


def test_a_delayed_job_of_ours_wakes_a_sleeping_scheduler_for_its_second(resque):
    """The scheduler sleeps until its next poll (made 600 s away here); a delayed job we
    push announces its time on the control channel, and the scheduler moves it then."""
    from resque_pool.resque.producer import enqueue_in
    from resque_pool.scheduler.process import Scheduler

    scheduler = Scheduler()
    try:
        scheduler.tick()  # the first poll: subscribed, nothing delayed
        assert scheduler.next_item == float("inf")
        scheduler.next_poll = time.monotonic() + 600
        enqueue_in(1, "Record", "soon")
        stamp = float(resque.client.zrange(resque.key("delayed_queue_schedule"), 0, 0)[0])
        scheduler.sleep()  # woken by the announcement, which told it the item's time
        assert scheduler.next_item == stamp
        deadline = time.monotonic() + BOUND
        while not resque.client.llen(resque.key("queue", "demo")):
            assert time.monotonic() < deadline, "the delayed job was not moved"
            scheduler.sleep()
            scheduler.tick()
        assert scheduler.next_item == float("inf")  # moved, nothing else delayed
    finally:
        scheduler.recurring.stop()
        scheduler.unsubscribe()
        scheduler.waker.close()
