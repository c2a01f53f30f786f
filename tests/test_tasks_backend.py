"""ResqueBackend against the Tasks framework's contract (the checks Django's own
custom-backend tests make): flags, validation messages, enqueue/get_result round trips,
queue names and priority bands, checks. Running tasks is in test_tasks_worker.py.

Runs on Django 5.2 with the django-tasks backport and on Django 6 with ``django.tasks``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from django.core import checks
from django.utils import timezone

from resque_pool.resque.wire import loads
from resque_pool.tasks.backend import ResqueBackend
from resque_pool.tasks.compat import (
    FRAMEWORK,
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_started,
)
from resque_pool.worker import Worker
from testproject.demo import tasks as demo

if FRAMEWORK == "django.tasks":
    from django.tasks import task
    from django.tasks.exceptions import TaskResultMismatch
else:
    from django_tasks import task
    from django_tasks.exceptions import TaskResultMismatch


def run_worker(*queues: str) -> Worker:
    worker = Worker(list(queues), interval=0, fork_per_job=False)
    worker.work()
    return worker


def queued(resque, queue: str) -> list[dict]:
    return [loads(raw) for raw in resque.client.lrange(resque.key("queue", queue), 0, -1)]


def module_level(a):
    return a


# -- the backend and its flags -------------------------------------------------------------


def test_the_configured_backend_and_its_capabilities():
    backend = task_backends["default"]
    assert isinstance(backend, ResqueBackend)
    assert backend.alias == "default"
    assert backend.queues == {"default"}
    assert backend.supports_get_result is True
    assert backend.supports_async_task is True
    assert backend.supports_priority is True
    assert backend.supports_defer is True


# -- validation, with the framework's messages ----------------------------------------------


def test_a_function_not_at_module_level_is_refused():
    def local(a):
        return a

    with pytest.raises(InvalidTask, match="Task function must be defined at a module level."):
        task()(local)


def test_takes_context_needs_a_context_argument():
    with pytest.raises(
        InvalidTask, match="Task takes context but does not have a first argument of 'context'."
    ):
        task(takes_context=True)(module_level)


@pytest.mark.parametrize("priority", [-101, 101, 3.1])
def test_priority_outside_the_range_is_refused(priority):
    with pytest.raises(InvalidTask, match="priority must be a whole number between -100 and 100."):
        demo.add.using(priority=priority)


def test_an_unknown_queue_is_refused_at_creation():
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid for backend."):
        demo.add.using(queue_name="nope")


def test_a_queue_name_that_cannot_be_a_resque_queue_is_refused(settings):
    settings.TASKS = {"default": {"BACKEND": "resque_pool.tasks.ResqueBackend", "QUEUES": []}}
    assert demo.add.using(queue_name="any-name.ok").queue_name == "any-name.ok"
    for name, why in [("a:b", "contains ':'"), ("a,b", "contains ','"), ("a b", "whitespace")]:
        with pytest.raises(
            InvalidTask, match=f"Queue '{name}' cannot name a Resque queue: .*{why}"
        ):
            demo.add.using(queue_name=name)


def test_a_naive_run_after_is_refused():
    with pytest.raises(InvalidTask, match="run_after"):
        demo.add.using(run_after=datetime.now())


def test_validation_runs_again_at_enqueue(settings):
    queue_2 = demo.add.using()  # valid now
    settings.TASKS = {
        "default": {"BACKEND": "resque_pool.tasks.ResqueBackend", "QUEUES": ["other"]}
    }
    with pytest.raises(InvalidTask, match="Queue 'default' is not valid for backend."):
        task_backends["default"].enqueue(queue_2, (), {})


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((datetime(2026, 1, 1),), {}, TypeError, "Unsupported type"),
        (({1, 2},), {}, TypeError, "Unsupported type"),
        (({1: "x"},), {}, TypeError, "Unsupported type in the task's arguments"),
        ((math.nan,), {}, ValueError, "Unsupported value in the task's arguments"),
        ((), {"b": object()}, TypeError, "Unsupported type"),
    ],
)
def test_arguments_that_do_not_survive_json_are_refused(resque, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        demo.add.enqueue(*args, **kwargs)
    assert resque.client.keys(resque.key("*")) == []  # nothing written


def test_system_checks_name_bad_queue_names(settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "resque_pool.tasks.ResqueBackend",
            "QUEUES": ["ok", "bad:name", "ok.high"],
            "OPTIONS": {"QUEUE_PREFIX": "x,"},
        }
    }
    messages = list(task_backends["default"].check())
    ids = sorted(m.id for m in messages)
    assert ids == ["resque_pool.tasks.E001", "resque_pool.tasks.E002", "resque_pool.tasks.W001"]
    assert any("'bad:name' cannot name a Resque queue: it contains ':'" in m.msg for m in messages)
    assert all(isinstance(m, checks.CheckMessage) for m in messages)


# -- enqueue and results --------------------------------------------------------------------


def test_enqueue_pushes_the_documented_payload_and_a_ready_result(resque):
    result = demo.add.enqueue(1, b=2)
    assert result.status == TaskResultStatus.READY
    assert result.args == [1] and result.kwargs == {"b": 2}
    assert result.enqueued_at is not None and result.started_at is None
    assert result.worker_ids == [] and result.errors == []
    assert resque.client.smembers(resque.key("queues")) == {"default"}
    raw = resque.client.lrange(resque.key("queue", "default"), 0, -1)
    assert raw == [
        '{"class":"resque_pool.tasks.TaskWrapper","args":[{"task":"testproject.demo.tasks.add",'
        f'"id":"{result.id}","backend":"default","queue_name":"default","priority":0,'
        '"args":[1],"kwargs":{"b":2}}]}'
    ]
    # The record has no expiry while the task waits.
    assert resque.client.ttl(resque.key("task-result", result.id)) == -1
    # As enqueue() does: a token wakes an idle worker of the queue now, not at its poll.
    assert resque.client.llen(resque.key("wakeup", "default")) == 1


def test_get_result_round_trip_from_the_backend_and_the_task(resque):
    result = demo.add.enqueue(2, 3)
    again = task_backends["default"].get_result(result.id)
    assert again.id == result.id
    assert again.status == TaskResultStatus.READY
    assert again.task.func is demo.add.func
    assert (again.args, again.kwargs) == ([2, 3], {})
    assert again.enqueued_at == result.enqueued_at
    assert demo.add.get_result(result.id).id == result.id
    with pytest.raises(TaskResultMismatch):
        demo.fail.get_result(result.id)
    with pytest.raises(TaskResultDoesNotExist):
        demo.add.get_result("no-such-id")


def test_async_enqueue_and_get_result(resque):
    from asgiref.sync import async_to_sync

    async def go():
        result = await demo.add.aenqueue(4, 5)
        again = await demo.add.aget_result(result.id)
        return result, again

    result, again = async_to_sync(go)()
    assert again.id == result.id and again.status == TaskResultStatus.READY


def test_priority_bands_are_queues(resque):
    demo.add.using(priority=10).enqueue(1, 1)
    demo.add.using(priority=-5).enqueue(1, 1)
    demo.add.enqueue(1, 1)
    assert resque.client.smembers(resque.key("queues")) == {
        "default.high",
        "default",
        "default.low",
    }
    assert queued(resque, "default.high")[0]["args"][0]["priority"] == 10


def test_a_worker_reading_the_bands_in_order_runs_high_priority_first(resque):
    low = demo.add.using(priority=-1).enqueue(0, 1)
    normal = demo.add.enqueue(0, 2)
    high = demo.add.using(priority=100).enqueue(0, 3)
    started = []

    def record(sender, task_result, **kwargs):
        started.append(task_result.id)

    task_started.connect(record)
    try:
        run_worker("default.high", "default", "default.low")
    finally:
        task_started.disconnect(record)
    assert started == [high.id, normal.id, low.id]


def test_queue_prefix_option(resque, settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "resque_pool.tasks.ResqueBackend",
            "OPTIONS": {"QUEUE_PREFIX": "tasks_"},
        }
    }
    demo.add.enqueue(1, 1)
    assert resque.client.smembers(resque.key("queues")) == {"tasks_default"}


def test_a_run_after_in_the_past_is_enqueued_at_once(resque):
    result = demo.add.using(run_after=timezone.now() - timedelta(minutes=1)).enqueue(1, 1)
    assert len(queued(resque, "default")) == 1
    assert demo.add.get_result(result.id).status == TaskResultStatus.READY


def test_a_check_warns_when_no_pool_runs_a_scheduler(settings):
    assert not [m for m in task_backends["default"].check() if m.id == "resque_pool.tasks.W002"]
    settings.RESQUE_SCHEDULER = False
    [warning] = [m for m in task_backends["default"].check() if m.id == "resque_pool.tasks.W002"]
    assert "RESQUE_SCHEDULER = False" in warning.msg


def test_the_dashboard_shows_the_tasks_own_name(resque):
    from resque_pool.dashboard.data import describe_payload

    demo.add.enqueue(1, 2)
    [payload] = queued(resque, "default")
    assert describe_payload(payload)["class"] == "testproject.demo.tasks.add"
