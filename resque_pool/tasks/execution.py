"""Running a task inside a worker: the wrapper job's ``perform`` and failure hook.

The worker runs ``TaskWrapper`` like any Resque job (fork per job, hooks, failure entry).
Its ``perform`` marks the result RUNNING, runs the task and records the outcome;
``on_failure`` marks a result that is still waiting or running FAILED when the job fails
outside the task (its worker or job child died, the task is unknown here), which is how a
task whose worker dies never stays RUNNING.
"""

from __future__ import annotations

import logging
import os
import socket
from traceback import format_exception
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from resque_pool.errors import DirtyExit, MalformedPayload, UnknownJob, exception_name
from resque_pool.resque.connection import get_redis, key
from resque_pool.tasks import known_tasks, results
from resque_pool.tasks.backend import ResqueBackend, json_round_trip, to_record
from resque_pool.tasks.compat import (
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_backends,
    task_finished,
    task_started,
)

logger = logging.getLogger(__name__)


def run(data: Any) -> None:
    """Run the task a wrapper payload names; re-raise its exception after recording it, so
    Resque records a failure entry (which the failed list can retry) as for any job."""
    spec = parse(data)
    task = known_tasks.get(spec["task"])
    if task is None:
        raise UnknownJob(f"no task is registered as {spec['task']!r} in this worker")
    backend = task_backends[spec["backend"]]
    if not isinstance(backend, ResqueBackend):
        raise UnknownJob(f"TASKS[{spec['backend']!r}] is not a ResqueBackend in this worker")
    record = results.load(spec["id"]) or _record_from_payload(spec)
    if record.get("status") == TaskResultStatus.RUNNING:
        # The previous attempt's worker died and the job was pushed back (requeued): say so.
        record.setdefault("errors", []).append(
            _error_entry(DirtyExit("the worker running this task died; the job was requeued"))
        )
    now = timezone.now()
    record.update(
        status=str(TaskResultStatus.RUNNING.value),
        started_at=results.encode_time(now),
        last_attempted_at=results.encode_time(now),
        finished_at=None,
    )
    record.pop("return_value", None)
    record["worker_ids"] = [*(record.get("worker_ids") or []), current_worker_id()]
    results.save(record)
    result = backend.result_from_record(record)
    sender = type(backend)
    task_started.send(sender=sender, task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
        else:
            value = task.call(*result.args, **result.kwargs)
        value = normalize_json(value)
        json_round_trip(value, "the task's return value")
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        _finish(record, result, TaskResultStatus.FAILED, error=error)
        task_finished.send(sender=sender, task_result=result)  # inside except, as Django
        raise
    _finish(record, result, TaskResultStatus.SUCCESSFUL, value=value)
    task_finished.send(sender=sender, task_result=result)


def lost(error: BaseException, args: tuple[Any, ...]) -> None:
    """The wrapper's ``on_failure`` hook: a result still READY or RUNNING becomes FAILED
    with ``error`` (a DirtyExit when its process died). Results the task's own failure
    already recorded are left alone."""
    data = args[0] if args and isinstance(args[0], dict) else None
    result_id = data.get("id") if data else None
    if not isinstance(result_id, str):
        return
    record = results.load(result_id)
    if record is None or record.get("status") in results.FINISHED:
        return
    logger.warning("task result %s marked FAILED: %s", result_id, exception_name(error))
    record.setdefault("errors", []).append(_error_entry(error))
    record.update(
        status=str(TaskResultStatus.FAILED.value),
        finished_at=results.encode_time(timezone.now()),
    )
    results.save(record)
    try:
        backend = task_backends[record.get("backend") or "default"]
    except ImproperlyConfigured:  # the alias is gone from TASKS: the record says enough
        return
    if isinstance(backend, ResqueBackend) and known_tasks.get(record.get("task") or ""):
        task_finished.send(type(backend), task_result=backend.result_from_record(record))


def parse(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MalformedPayload(f"a task payload's argument must be an object, not {data!r:.100}")
    for field in ("task", "id", "backend"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise MalformedPayload(f"a task payload needs a {field!r} string: {data!r:.200}")
    if not isinstance(data.get("args", []), list) or not isinstance(data.get("kwargs", {}), dict):
        raise MalformedPayload(f"a task payload's args/kwargs are malformed: {data!r:.200}")
    return data


def current_worker_id() -> str:
    """The Resque id of the worker running this job: the registered ``host:pid:queues``
    whose pid is ours (in-process) or our parent's (a forked job child)."""
    host = socket.gethostname()
    prefixes = tuple(f"{host}:{pid}:" for pid in (os.getpid(), os.getppid()))
    for worker_id in get_redis().smembers(key("workers")):
        if worker_id.startswith(prefixes):
            return worker_id
    return f"{host}:{os.getpid()}"


def _record_from_payload(spec: dict[str, Any]) -> dict[str, Any]:
    """A record again for a job whose record expired (retried from the failed list after
    the result TTL)."""
    return {
        "id": spec["id"],
        "task": spec["task"],
        "backend": spec["backend"],
        "queue_name": spec.get("queue_name"),
        "priority": spec.get("priority", 0),
        "run_after": None,
        "args": spec.get("args", []),
        "kwargs": spec.get("kwargs", {}),
        "status": str(TaskResultStatus.READY.value),
        "enqueued_at": None,
        "errors": [],
        "worker_ids": [],
    }


def _error_entry(error: BaseException) -> dict[str, str]:
    cls = type(error)
    return {
        "exception_class_path": f"{cls.__module__}.{cls.__qualname__}",
        "traceback": "".join(format_exception(error)),
    }


def _finish(
    record: dict[str, Any],
    result: TaskResult,
    status: TaskResultStatus,
    error: BaseException | None = None,
    value: Any = None,
) -> None:
    """Record the outcome in Redis (the TTL starts now) and on ``result`` for the signal."""
    finished = timezone.now()
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", finished)
    if error is not None:
        entry = _error_entry(error)
        result.errors.append(
            TaskError(
                exception_class_path=entry["exception_class_path"], traceback=entry["traceback"]
            )
        )
    else:
        object.__setattr__(result, "_return_value", value)
    queue = record.get("queue") or ""
    results.save({**to_record(result, queue), "run_after": record.get("run_after")})
