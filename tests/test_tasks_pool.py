"""Django tasks end to end: enqueued here, run by a real ``resque_pool`` (forked workers,
fork per job, its scheduler child) on the suite's real Redis, results read back here."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from resque_pool.tasks.compat import TaskResultStatus
from testproject.demo import tasks as demo
from tests.support.common import wait_until
from tests.support.pool_fixtures import registered, write

BANDS = "default.high,default,default.low"


@pytest.fixture
def task_pool(start_pool, tmp_path, resque):
    def start(count: int = 2, scheduler: bool = False):
        config = write(tmp_path / "pool.yml", f'"{BANDS}": {count}\n')
        pool = start_pool("-c", str(config), settings={"RESQUE_SCHEDULER": scheduler})
        if not scheduler:  # the scheduler child's title is not a worker's
            pool.wait_for_workers({BANDS: count})
        wait_until(lambda: len(registered(resque)) == count, 20, message="registered workers")
        return pool

    return start


def finished(result, timeout: float = 30):
    def done():
        result.refresh()
        return result.is_finished

    wait_until(done, timeout, 0.1, f"task {result.task.name} to finish")
    return result


def test_sync_async_context_and_failing_tasks_through_a_pool(task_pool, resque):
    pool = task_pool()
    added = demo.add.enqueue(1, 2)
    added_async = demo.add_async.using(priority=5).enqueue(40, 2)
    context = demo.attempt.using(priority=-5).enqueue("ctx")
    failing = demo.fail.enqueue("kaput")

    assert finished(added).status == TaskResultStatus.SUCCESSFUL
    assert added.return_value == 3
    assert added.worker_ids[0] in registered(resque)
    assert finished(added_async).return_value == 42
    assert finished(context).return_value == {"label": "ctx", "attempt": 1, "id": context.id}
    finished(failing)
    assert failing.status == TaskResultStatus.FAILED
    assert failing.errors[0].exception_class_path == "builtins.ValueError"
    assert "ValueError: kaput" in failing.errors[0].traceback
    # The task's result is settled inside the job; the failure entry is the worker's
    # write that follows it.
    wait_until(lambda: resque.client.llen(resque.key("failed")) == 1, 20, 0.05, "the failure")
    assert pool.process.poll() is None


def test_a_task_whose_job_child_is_killed_fails_with_a_dirty_exit(task_pool, resque):
    from tests.support.processes import children

    pool = task_pool(count=1)
    result = demo.sleep.enqueue(60)

    def running_child():
        result.refresh()
        if result.status != TaskResultStatus.RUNNING:
            return None
        [worker] = pool.workers()
        return children(worker)

    [child] = wait_until(running_child, 30, 0.1, "the task running in a job child")
    os.kill(child, signal.SIGKILL)
    finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class_path == "resque_pool.errors.DirtyExit"
    # The worker lives on and runs the next task.
    assert finished(demo.add.enqueue(2, 2)).return_value == 4


def test_a_task_whose_worker_is_killed_fails_when_the_manager_cleans_up(task_pool, resque):
    pool = task_pool(count=1)
    result = demo.sleep.enqueue(60)
    wait_until(
        lambda: result.refresh() or result.status == TaskResultStatus.RUNNING,
        30,
        0.1,
        "the task running",
    )
    [worker] = pool.workers()
    os.killpg(worker, signal.SIGKILL)  # the worker and its job child, as an OOM kill might
    finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class_path == "resque_pool.errors.DirtyExit"
    assert "did not gracefully exit" in result.errors[-1].traceback


def test_a_deferred_task_runs_after_its_time_through_the_pools_scheduler(task_pool, resque):
    task_pool(count=1, scheduler=True)
    run_after = timezone.now() + timedelta(seconds=2)
    result = demo.add.using(run_after=run_after).enqueue(2, 3)
    finished(result, timeout=40)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert result.started_at >= run_after  # never early
