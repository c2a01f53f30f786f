"""``ResqueBackend``: Django's Tasks framework on Resque queues run by the pool's workers.

``TASKS = {"default": {"BACKEND": "resque_pool.tasks.ResqueBackend", "QUEUES": [...],
"OPTIONS": {"QUEUE_PREFIX": ""}}}``. Enqueueing writes the task's result record and pushes a
``resque_pool.tasks.TaskWrapper`` job in one transaction; a worker runs it
(``resque_pool/tasks/execution.py``). See docs/tasks.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.utils import timezone
from django.utils.crypto import get_random_string

from resque_pool.conf import settings
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis
from resque_pool.resque.producer import acknowledge_push, enqueue_at
from resque_pool.resque.wakeup import announce_new_queue, push_job
from resque_pool.tasks import WRAPPER_NAME, known_tasks, queues, results
from resque_pool.tasks.compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)

logger = logging.getLogger(__name__)


class ResqueBackend(BaseTaskBackend):
    supports_async_task = True  # the worker runs coroutines with async_to_sync
    supports_get_result = True  # results live in Redis, readable from any process
    supports_priority = True  # three bands, each its own Resque queue (queues.py)
    supports_defer = True  # the delayed queue, moved by the pools' scheduler children

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.queue_prefix = str(self.options.get("QUEUE_PREFIX", "") or "")

    # -- validation ---------------------------------------------------------------------

    def validate_task(self, task: Task) -> None:
        """The framework's checks, then ours: the queue name must make a Resque queue
        name. A valid task is recorded as known, so workers may run it."""
        super().validate_task(task)
        problem = queues.name_problem(task.queue_name)
        if problem:
            raise InvalidTask(f"Queue '{task.queue_name}' cannot name a Resque queue: {problem}.")
        known_tasks.remember(task)

    def resque_queue(self, task: Task) -> str:
        return queues.resque_queue(task.queue_name, task.priority, self.queue_prefix)

    # -- enqueue ------------------------------------------------------------------------

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        # TaskResult normalises the arguments and raises the framework's TypeError
        # ("Unsupported type") for anything that is not JSON; we also refuse what JSON
        # would change (non-string keys) or cannot write (NaN).
        result = TaskResult(
            task=task,
            id=get_random_string(32),
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        json_round_trip(result.args, "the task's arguments")
        json_round_trip(result.kwargs, "the task's keyword arguments")
        object.__setattr__(result, "enqueued_at", timezone.now())
        queue = self.resque_queue(task)
        record = to_record(result, queue)
        if task.run_after is not None:
            self._defer(task, result, record, queue)
        else:
            payload = wire.job_payload(WRAPPER_NAME, [wrapper_arguments(result)])
            pipe = get_redis().pipeline(transaction=True)
            results.save(record, pipe)
            position = push_job(pipe, queue, payload)  # as enqueue() does, token included
            announce_new_queue(pipe.execute(), position)
            if settings.RESQUE_ENQUEUE_WAIT_REPLICAS:  # as enqueue() waits, after the push
                acknowledge_push(task.module_path, queue, settings.RESQUE_ENQUEUE_WAIT_REPLICAS)
        task_enqueued.send(type(self), task_result=result)
        return result

    def _defer(self, task: Task, result: TaskResult, record: dict[str, Any], queue: str) -> None:
        """Into resque-scheduler's delayed queue, at the first whole second not before
        ``run_after`` (the scheduler works in whole seconds; a task never runs early)."""
        results.save(record)
        try:
            enqueue_at(
                math.ceil(task.run_after.timestamp()),
                WRAPPER_NAME,
                wrapper_arguments(result),
                queue=queue,
            )
        except BaseException:
            get_redis().delete(results.record_key(result.id))
            raise

    # -- results ------------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult:
        # Ids are the strings enqueue() returned; anything else (None, 123) names no
        # result, as in the framework's own backends, rather than a TypeError from below.
        if not isinstance(result_id, str) or not result_id:
            raise TaskResultDoesNotExist(result_id)
        record = results.load(result_id)
        if record is None:
            raise TaskResultDoesNotExist(result_id)
        return self.result_from_record(record)

    def result_from_record(self, record: dict[str, Any]) -> TaskResult:
        """The result a stored record describes. A record naming a task this process does
        not know raises ``SuspiciousOperation``, as the database and rq backends do for a
        stored path that is not a task: the result exists, so "does not exist" would lie."""
        path = record.get("task")
        task = known_tasks.get(path) if isinstance(path, str) else None
        if task is None:
            raise SuspiciousOperation(
                f"task result {record.get('id')}: its task {path!r} is not known in this "
                "process (define it in an installed app's tasks module)"
            )
        return to_result(record, as_enqueued(task, record))

    # -- checks -------------------------------------------------------------------------

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        where = f"TASKS[{self.alias!r}]"
        if not apps.is_installed("resque_pool"):
            # Without the app no worker finds the tasks modules, and no migration, admin
            # page or scheduler exists: tasks would be queued and never run.
            yield checks.Error(
                f"{where} uses resque_pool.tasks.ResqueBackend, but 'resque_pool' is not in "
                "INSTALLED_APPS.",
                hint='Add "resque_pool" to INSTALLED_APPS.',
                id="resque_pool.tasks.E003",
            )
        for name in sorted(self.queues):
            problem = queues.name_problem(name)
            if problem:
                yield checks.Error(
                    f"{where} queue {name!r} cannot name a Resque queue: {problem}.",
                    id="resque_pool.tasks.E001",
                )
        prefix_problem = queues.name_problem(self.queue_prefix) if self.queue_prefix else None
        if prefix_problem:
            yield checks.Error(
                f"{where} OPTIONS['QUEUE_PREFIX'] {self.queue_prefix!r} cannot start a Resque "
                f"queue name: {prefix_problem}.",
                id="resque_pool.tasks.E002",
            )
        band_queues: dict[str, str] = {}
        for name in sorted(self.queues):
            for resque_name in queues.resque_queues(name, self.queue_prefix)[::2]:
                band_queues[resque_name] = name
        for name in sorted(self.queues):
            owner = band_queues.get(queues.resque_queue(name, 0, self.queue_prefix))
            if owner is not None:
                yield checks.Warning(
                    f"{where} queue {name!r} is also the Resque queue of a priority band of "
                    f"{owner!r}; their tasks would share one Resque queue.",
                    id="resque_pool.tasks.W001",
                )
        if not settings.RESQUE_SCHEDULER:
            yield checks.Warning(
                f"{where}: tasks with run_after wait in the delayed queue, and "
                "RESQUE_SCHEDULER = False means no resque_pool moves them to their queue.",
                hint="Run `manage.py resque_scheduler` somewhere (or a Ruby resque-scheduler "
                "on the same Redis), or set RESQUE_SCHEDULER = True.",
                id="resque_pool.tasks.W002",
            )


def json_round_trip(value: Any, what: str) -> None:
    """Refuse a value that JSON cannot write or would give back changed."""
    try:
        text = wire.dumps(value)
    except ValueError as error:
        raise ValueError(f"Unsupported value in {what}: {error}") from None
    if wire.loads(text) != value:
        raise TypeError(
            f"Unsupported type in {what}: it does not survive a JSON round trip "
            "(object keys must be strings)"
        )


def wrapper_arguments(result: TaskResult) -> dict[str, Any]:
    """The wrapper job's one argument: enough to run the task without its record."""
    task = result.task
    return {
        "task": task.module_path,
        "id": result.id,
        "backend": result.backend,
        "queue_name": task.queue_name,
        "priority": task.priority,
        "args": result.args,
        "kwargs": result.kwargs,
    }


def to_record(result: TaskResult, queue: str) -> dict[str, Any]:
    task = result.task
    record = {
        "id": result.id,
        "task": task.module_path,
        "backend": result.backend,
        "queue_name": task.queue_name,
        "priority": task.priority,
        "run_after": results.encode_time(task.run_after),
        "queue": queue,
        "args": result.args,
        "kwargs": result.kwargs,
        "status": str(result.status.value),
        "enqueued_at": results.encode_time(result.enqueued_at),
        "started_at": results.encode_time(result.started_at),
        "finished_at": results.encode_time(result.finished_at),
        "last_attempted_at": results.encode_time(result.last_attempted_at),
        "errors": [
            {"exception_class_path": e.exception_class_path, "traceback": e.traceback}
            for e in result.errors
        ],
        "worker_ids": list(result.worker_ids),
    }
    if result.status == TaskResultStatus.SUCCESSFUL:
        record["return_value"] = result._return_value
    return record


def as_enqueued(task: Task, record: dict[str, Any]) -> Task:
    """The known task with the queue and priority it was enqueued with (the same
    function, so ``Task.get_result`` matches it)."""
    changes = {}
    if isinstance(record.get("queue_name"), str):
        changes["queue_name"] = record["queue_name"]
    if isinstance(record.get("priority"), int):
        changes["priority"] = record["priority"]
    run_after = results.decode_time(record.get("run_after"))
    if run_after is not None:
        changes["run_after"] = run_after
    if isinstance(record.get("backend"), str):
        changes["backend"] = record["backend"]
    try:
        return dataclasses.replace(task, **changes)
    except (InvalidTask, ImproperlyConfigured):
        return task  # settings changed since (a queue or backend removed): as known now


def to_result(record: dict[str, Any], task: Task) -> TaskResult:
    try:
        status = TaskResultStatus(record.get("status"))
    except ValueError:
        status = TaskResultStatus.READY
    errors = [
        TaskError(
            exception_class_path=str(item.get("exception_class_path", "")),
            traceback=str(item.get("traceback", "")),
        )
        for item in record.get("errors") or []
        if isinstance(item, dict)
    ]
    result = TaskResult(
        task=task,
        id=record["id"],
        status=status,
        enqueued_at=results.decode_time(record.get("enqueued_at")),
        started_at=results.decode_time(record.get("started_at")),
        finished_at=results.decode_time(record.get("finished_at")),
        last_attempted_at=results.decode_time(record.get("last_attempted_at")),
        args=list(record.get("args") or []),
        kwargs=dict(record.get("kwargs") or {}),
        backend=str(record.get("backend") or task.backend),
        errors=errors,
        worker_ids=[str(w) for w in record.get("worker_ids") or []],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", record.get("return_value"))
    return result
