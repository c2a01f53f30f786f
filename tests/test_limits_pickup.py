"""Pick-up through wake-up keys: an idle worker blocked on ``<ns>:wakeup:<queue>`` takes a
job pushed by ``enqueue()`` (or requeued, or moved by the scheduler) long before its next
poll; jobs pushed without a token are still found by the poll at INTERVAL."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from resque_pool import enqueue
from resque_pool.resque import wakeup
from resque_pool.resque.connection import get_redis
from tests.support.common import wait_until

# Far beyond every bounded wait below: a job done within them came through a wake-up.
SLOW_POLL = "600"
BOUND = 30.0


def start_worker(spawn_manage, queues="demo", env=None) -> subprocess.Popen:
    return spawn_manage(
        "resque_work", "--queues", queues, env={"INTERVAL": SLOW_POLL, **(env or {})}
    )


def done(resque) -> set[str]:
    return resque.client.smembers(resque.key("demo", "done"))


def waiting(resque, worker) -> None:
    from tests.test_worker_processes import wait_procline

    wait_procline(worker.pid, r"resque-[\d.]+: Waiting for.*")


@pytest.mark.parametrize("mode", [{}, {"FORK_PER_JOB": "false"}], ids=["fork", "in-process"])
def test_an_idle_worker_takes_an_enqueued_job_before_its_next_poll(resque, spawn_manage, mode):
    worker = start_worker(spawn_manage, env=mode)
    waiting(resque, worker)
    for token in ("a", "b", "c"):
        enqueue("Record", token)
        wait_until(lambda t=token: t in done(resque), timeout=BOUND, message=f"job {token}")
    worker.send_signal(signal.SIGQUIT)
    assert worker.wait(BOUND) == 0


def test_a_wildcard_worker_wakes_for_a_queue_created_while_it_waits(resque, spawn_manage):
    worker = start_worker(spawn_manage, queues="*")
    waiting(resque, worker)
    enqueue("Record", "new-queue", queue="brand-new")
    wait_until(lambda: "new-queue" in done(resque), timeout=BOUND, message="job on a new queue")


def test_enqueue_pushes_one_bounded_expiring_token_per_job(resque):
    for token in range(wakeup.MAX_TOKENS + 5):
        enqueue("Record", token)
    name = resque.key("wakeup", "demo")
    assert resque.client.llen(name) == wakeup.MAX_TOKENS
    assert 0 < resque.client.ttl(name) <= wakeup.TOKEN_TTL
    assert wakeup.wait_for_token(["other", "demo"], 0.1) == "demo"


def test_a_paused_worker_leaves_the_tokens_for_others(resque, spawn_manage):
    resque.client.set(resque.key("pause-all-workers"), "true")
    worker = start_worker(spawn_manage, env={"INTERVAL": "0.5"})
    from tests.test_worker_processes import wait_procline

    wait_procline(worker.pid, r"resque-[\d.]+: Paused")
    enqueue("Record", "while-paused")
    time.sleep(2)  # several passes of the paused loop: none may take the token
    assert resque.client.llen(resque.key("wakeup", "demo")) == 1
    assert done(resque) == set()
    resque.client.delete(resque.key("pause-all-workers"))
    wait_until(lambda: "while-paused" in done(resque), timeout=BOUND, message="job after resume")


def test_wait_for_token_times_out_without_one(resque):
    assert wakeup.wait_for_token(["demo"], 0.05) is None
    wakeup.wake(["demo", "demo", "x"])
    assert get_redis().llen(resque.key("wakeup", "demo")) == 2
    assert re.fullmatch(r".*:wakeup:x", resque.key("wakeup", "x"))
