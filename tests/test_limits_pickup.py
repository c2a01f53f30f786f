"""Pick-up through wake-up keys: an idle worker blocked on ``<ns>:wakeup:<queue>`` takes a
job pushed by ``enqueue()`` (or requeued, or moved by the scheduler) long before its next
poll; jobs pushed without a token are still found by the poll at INTERVAL."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest

import tests.support.limits_jobs  # noqa: F401  (registers the jobs enqueued here)
from resque_pool import enqueue
from resque_pool.resque import wakeup
from resque_pool.resque.connection import get_redis
from tests.support.common import wait_until
from tests.support.pool_fixtures import write

# Far beyond every bounded wait below: a job done within them came through a wake-up.
SLOW_POLL = "600"
BOUND = 30.0
HOST = socket.gethostname()


def start_worker(spawn_manage, queues="demo", env=None, settings=None) -> subprocess.Popen:
    return spawn_manage(
        "resque_work",
        "--queues",
        queues,
        env={"INTERVAL": SLOW_POLL, **(env or {})},
        settings=settings,
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


def test_a_pool_worker_finds_a_foreign_push_at_its_interval_poll(resque, start_pool, tmp_path):
    pool = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 1\n")), env={"INTERVAL": "1"})
    pool.wait_for_workers({"demo": 1})
    # As Ruby's Resque.enqueue pushes: SADD queues and RPUSH, and no wake-up token.
    resque.client.sadd(resque.key("queues"), "demo")
    resque.client.rpush(resque.key("queue", "demo"), '{"class":"Record","args":["foreign"]}')
    assert not resque.client.exists(resque.key("wakeup", "demo"))
    wait_until(
        lambda: "foreign" in done(resque),
        timeout=BOUND,
        message=lambda: f"the foreign job, found by the poll (log:\n{pool.log()})",
    )


def test_a_requeued_lost_job_wakes_an_idle_pool_worker_before_its_poll(
    resque, start_pool, spawn_manage, tmp_path
):
    # The lost worker's start-up prune holds Resque's prune lock for a heartbeat interval (as
    # Ruby's does): 1 s here, not 60, or the manager could not prune it in time.
    quick_prunes = {"RESQUE_HEARTBEAT_INTERVAL": 0.5}
    # A lone worker takes a job that sleeps on its first run ...
    lost = start_worker(spawn_manage, settings=quick_prunes)
    waiting(resque, lost)
    enqueue("SleepFirstTime", "lost", 60)
    lost_id = f"{HOST}:{lost.pid}:demo"
    wait_until(
        lambda: resque.client.get(resque.key("worker", lost_id)),
        timeout=BOUND,
        message="the job in flight",
    )
    resque.client.delete(resque.key("wakeup", "demo"))  # no token of the enqueue left over
    # ... while a pool with requeueing on, a prune every second and a far poll starts idle.
    pool = start_pool(
        "-c",
        str(write(tmp_path / "pool.yml", "demo: 1\n")),
        env={"INTERVAL": SLOW_POLL},
        settings={**quick_prunes, "RESQUE_REQUEUE_DIRTY_JOBS": True},
    )
    [idle] = pool.wait_for_workers({"demo": 1})
    os.killpg(lost.pid, signal.SIGKILL)  # the worker and its job child
    lost.wait(BOUND)
    # The manager's prune requeues the job with a wake-up token; the idle worker runs it.
    wait_until(
        lambda: "lost" in resque.client.smembers(resque.key("limits", "done")),
        timeout=BOUND,
        message=lambda: f"the requeued job done (log:\n{pool.log()})",
    )
    assert resque.client.get(resque.key("limits", "runs", "lost")) == "2"
    # The job wrote its token before its worker counted it, and maybe before the prune
    # finished unregistering the dead worker: wait for both.
    wait_until(
        lambda: resque.client.get(resque.key("stat", "processed", f"{HOST}:{idle}:demo")) == "1",
        timeout=BOUND,
        message="the job counted as the pool worker's",
    )
    wait_until(
        lambda: not resque.client.sismember(resque.key("workers"), lost_id),
        timeout=BOUND,
        message="the dead worker unregistered",
    )
    assert resque.client.llen(resque.key("failed")) == 0
