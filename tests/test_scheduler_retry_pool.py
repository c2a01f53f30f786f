"""Retries in a real pool (manager, forked workers, the scheduler child, a real Redis): a
fixed delay goes through the delayed queue, and an interruption requeued by the loss
policy does not use up an attempt. The jobs are tests/support/retry_jobs.py's."""

from __future__ import annotations

import os
import signal
from itertools import pairwise

from resque_pool import enqueue
from resque_pool.resque.retry import attempts_in, retry_key
from tests.support.common import wait_until
from tests.support.pool_fixtures import first_failure, processing_worker, write
from tests.support.retry_jobs import RETRY_DELAY, runs


def start(start_pool, tmp_path, **settings):
    pool = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 1\n")), settings=settings)
    pool.wait_for_workers({"demo": 1})
    return pool


def test_a_fixed_delay_retries_through_the_delayed_queue_then_gives_up_once(
    resque, start_pool, tmp_path
):
    pool = start(start_pool, tmp_path, RESQUE_SCHEDULER=True)
    enqueue("RetryLater", "fixed")
    entry = first_failure(resque, pool)
    seen = runs(resque, "fixed")
    # Attempts 1, 2, 3, each seeing resque-retry's counter as the previous one left it.
    assert [run["counter"] for run in seen] == [None, "0", "1"]
    # Each retry came through the delayed queue: not before its whole-second timestamp,
    # at most a second earlier than failure + delay (Ruby's Time#to_i).
    for earlier, later in pairwise(seen):
        assert later["at"] - earlier["at"] > RETRY_DELAY - 1
    # The scheduler child logs a move after its wake-up may already have run the job.
    moves = "moved 1 due delayed job(s) to their queues"
    wait_until(lambda: pool.log().count(moves) >= 2, 10, message="the scheduler's two moves")
    assert pool.log().count(moves) == 2
    # One failure entry, saying how many attempts were made; the counter is gone.
    assert resque.client.llen(resque.key("failed")) == 1
    assert entry["error"] == "still broken (gave up after 3 attempts)"
    assert attempts_in(entry) == 3
    assert entry["payload"] == {"class": "RetryLater", "args": ["fixed"]}
    assert not resque.client.exists(retry_key("RetryLater", ["fixed"]))
    assert resque.client.get(resque.key("stat", "failed")) == "3"


def test_an_interruption_requeued_by_the_loss_policy_is_not_an_attempt(
    resque, start_pool, tmp_path
):
    pool = start(start_pool, tmp_path, RESQUE_REQUEUE_DIRTY_JOBS=True)
    enqueue("RetryAfterLoss", "lost")
    # Run 1 failed (the counter is 0, retried at once); run 2 is in flight: kill its worker.
    wait_until(lambda: len(runs(resque, "lost")) == 2, 30, message=f"run 2 (log:\n{pool.log()})")
    worker_id = wait_until(lambda: processing_worker(resque), 20, message="run 2's worker")
    os.kill(int(worker_id.split(":")[1]), signal.SIGKILL)
    entry = first_failure(resque, pool)
    pool.wait_for_log(r"requeued at the head of demo \(interruption 1\)")
    # Run 3, the requeued attempt 2, found the counter as run 2 found it: the interruption
    # used no attempt. Run 4 counted as usual.
    assert [run["counter"] for run in runs(resque, "lost")] == [None, "0", "0", "1"]
    assert resque.client.llen(resque.key("failed")) == 1
    assert entry["error"] == "still broken (gave up after 3 attempts)"
    assert entry["exception"] == "RuntimeError"  # not the interruption's DirtyExit
    assert not resque.client.exists(retry_key("RetryAfterLoss", ["lost"]))
    assert resque.client.get(resque.key("stat", "failed")) == "3"
