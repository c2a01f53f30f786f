"""Tasks run by a real worker (in process) on the suite's Redis: results, errors,
attempts, signals, unknown tasks, lost workers, deferred tasks. Runs on Django 5.2 with the
django-tasks backport and on Django 6 with ``django.tasks``."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
from django.utils import timezone

from resque_pool.resque import failures
from resque_pool.resque.wire import loads
from resque_pool.tasks import execution, known_tasks
from resque_pool.tasks.backend import ResqueBackend
from resque_pool.tasks.compat import (
    TaskResultStatus,
    task_enqueued,
    task_finished,
    task_started,
)
from resque_pool.worker import Worker
from testproject.demo import tasks as demo


def run_worker(*queues: str) -> Worker:
    worker = Worker(list(queues), interval=0, fork_per_job=False)
    worker.work()
    return worker


def test_a_worker_runs_the_task_and_records_its_result(resque, settings):
    settings.RESQUE_TASK_RESULT_TTL = 1234
    result = demo.add.enqueue(1, 2)
    worker = run_worker("default")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.worker_ids == [worker.id]
    assert result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.errors == []
    assert 1200 < resque.client.ttl(resque.key("task-result", result.id)) <= 1234
    assert resque.client.get(resque.key("stat", "processed")) == "1"


def test_an_async_task_runs(resque):
    result = demo.add_async.enqueue(20, 22)
    run_worker("default")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42


def test_a_failing_task_records_its_error_and_a_resque_failure(resque):
    result = demo.fail.enqueue("broken")
    run_worker("default")
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.finished_at is not None
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "ValueError: broken" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    [entry] = failures.all(0, 1)
    assert entry["exception"] == "ValueError" and entry["error"] == "broken"
    assert resque.client.ttl(resque.key("task-result", result.id)) > 0


def test_context_gives_the_attempt(resque):
    result = demo.attempt.enqueue("first")
    run_worker("default")
    result.refresh()
    assert result.return_value == {"label": "first", "attempt": 1, "id": result.id}


def test_a_retry_from_the_failed_list_is_the_next_attempt(resque):
    result = demo.fail.enqueue("once")
    run_worker("default")
    failures.requeue(0)
    run_worker("default")
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 2 and len(result.errors) == 2


def _wrapper_args(result):
    from resque_pool.tasks.backend import wrapper_arguments

    return wrapper_arguments(result)


def test_signals_fire_where_django_fires_them(resque):
    seen = []

    def receiver(signal_name):
        def record(sender, task_result, **kwargs):
            seen.append((signal_name, sender, task_result.status))

        return record

    receivers = {
        s: receiver(n)
        for s, n in [
            (task_enqueued, "enqueued"),
            (task_started, "started"),
            (task_finished, "finished"),
        ]
    }
    for signal, fn in receivers.items():
        signal.connect(fn)
    try:
        demo.add.enqueue(1, 1)
        run_worker("default")
    finally:
        for signal, fn in receivers.items():
            signal.disconnect(fn)
    assert seen == [
        ("enqueued", ResqueBackend, TaskResultStatus.READY),
        ("started", ResqueBackend, TaskResultStatus.RUNNING),
        ("finished", ResqueBackend, TaskResultStatus.SUCCESSFUL),
    ]


def test_a_payload_naming_an_unknown_task_fails_as_an_unknown_job(resque):
    result = demo.add.enqueue(1, 1)
    raw = resque.client.lpop(resque.key("queue", "default"))
    resque.client.rpush(
        resque.key("queue", "default"), raw.replace("testproject.demo.tasks.add", "os.system")
    )
    run_worker("default")
    [entry] = failures.all(0, 1)
    assert entry["exception"] == "resque_pool.errors.UnknownJob"
    assert "'os.system'" in entry["error"]
    # The result the payload points at says so instead of waiting for ever.
    record = loads(resque.client.get(resque.key("task-result", result.id)))
    assert record["status"] == "FAILED"
    assert record["errors"][0]["exception_class_path"] == "resque_pool.errors.UnknownJob"
    assert "os.system" not in known_tasks.names()


def test_a_dead_workers_task_is_failed_by_the_clean_up(resque):
    from resque_pool.resque.jobs import Job
    from resque_pool.resque.pruning import cleanup_dead_worker
    from resque_pool.resque.worker_records import register, working_on

    result = demo.sleep.enqueue(5)
    job = Job.from_raw("default", resque.client.lpop(resque.key("queue", "default")))
    worker_id = "deadhost:999999:default"
    register(worker_id)
    working_on(worker_id, job)
    # As if the task had started there, then the worker was SIGKILLed.
    record = loads(resque.client.get(resque.key("task-result", result.id)))
    record["status"] = "RUNNING"
    record["worker_ids"] = [worker_id]
    resque.client.set(resque.key("task-result", result.id), json.dumps(record))
    assert cleanup_dead_worker(worker_id)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "resque_pool.errors.DirtyExit"
    assert "did not gracefully exit" in result.errors[0].traceback


def test_a_requeued_lost_attempt_is_recorded_when_the_task_runs_again(resque):
    result = demo.attempt.enqueue("again")
    raw = resque.client.lindex(resque.key("queue", "default"), 0)
    record = loads(resque.client.get(resque.key("task-result", result.id)))
    record.update(status="RUNNING", worker_ids=["gone:1:default"])
    resque.client.set(resque.key("task-result", result.id), json.dumps(record))
    assert raw  # still queued, as RESQUE_REQUEUE_DIRTY_JOBS pushes it back
    run_worker("default")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["attempt"] == 2
    assert [e.exception_class_path for e in result.errors] == ["resque_pool.errors.DirtyExit"]


def test_a_record_that_expired_is_rebuilt_when_its_job_runs(resque):
    result = demo.add.enqueue(3, 4)
    resque.client.delete(resque.key("task-result", result.id))
    run_worker("default")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 7


def test_lost_leaves_a_finished_result_alone(resque):
    result = demo.add.enqueue(1, 1)
    run_worker("default")
    execution.lost(RuntimeError("late"), (_wrapper_args(result),))
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.errors == []


def test_a_deferred_task_waits_in_the_delayed_queue_and_runs_when_moved(resque):
    from resque_pool.scheduler import delayed, mover

    run_after = timezone.now() + timedelta(seconds=30, microseconds=300_000)
    result = demo.add.using(run_after=run_after).enqueue(5, 6)
    assert result.status == TaskResultStatus.READY
    assert resque.client.llen(resque.key("queue", "default")) == 0
    # The first whole second not before run_after: a task never runs early.
    stamp = math.ceil(run_after.timestamp())
    [item] = delayed.items_at(stamp)
    assert item.queue == "default"
    assert item.class_name == "resque_pool.tasks.TaskWrapper"
    assert item.args[0]["id"] == result.id
    # Its record has no expiry while it waits, and remembers run_after.
    assert resque.client.ttl(resque.key("task-result", result.id)) == -1
    assert demo.add.get_result(result.id).task.run_after == run_after
    assert mover.move_due(now=stamp - 1).moved == 0
    assert mover.move_due(now=stamp).moved == 1
    run_worker("default")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 11
