"""Reading the records Resque keeps in Redis, one parser each, shared by the worker, the
manager and the dashboard.

Other clients (Ruby's Resque, resque-web, scripts) write these records too, so every
parser here accepts what they write and never raises on something odd: it says what it
could read, and the caller decides whether that is enough. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resque_pool.resque import wire

PAUSE_ALL_WORKERS = "pause-all-workers"

# Jobs that wrap another one, and the field of their first argument naming it: Rails'
# ActiveJob adapter for Resque, and our own Django Tasks backend (resque_pool.tasks).
WRAPPERS = {
    "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper": "job_class",
    "resque_pool.tasks.TaskWrapper": "task",
}


def json_or_text(raw: str) -> tuple[Any, bool]:
    """``(value, True)`` for JSON, else ``(raw, False)``: a record another client wrote
    as plain text (or nested too deep to decode) is kept as the text it is."""
    try:
        return wire.loads(raw), True
    except ValueError:
        return raw, False


def job_class(payload: Any) -> str | None:
    """The job class a payload is about, as resque-web shows it: a wrapper's wrapped class
    (ActiveJob's ``job_class``, a Django task's name), else its ``class``; None when the
    payload names no class."""
    if not isinstance(payload, dict):
        return None
    name = payload.get("class")
    field = WRAPPERS.get(name) if isinstance(name, str) else None
    args = payload.get("args")
    if field and isinstance(args, list) and args and isinstance(args[0], dict):
        wrapped = args[0].get(field)
        if isinstance(wrapped, str) and wrapped:
            return wrapped
    return name if isinstance(name, str) else None


# The id a wrapper carries for the job it wraps, and the name logs give it.
WRAPPED_IDS = {
    "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper": ("job_id", "job_id"),
    "resque_pool.tasks.TaskWrapper": ("id", "task_id"),
}


def wrapped_id(payload: Any) -> tuple[str, str] | None:
    """``(name, id)`` of the job a wrapper carries (ActiveJob's ``job_id``, a Django task's
    result id as ``task_id``); None for a plain Resque job, which has no id."""
    if not isinstance(payload, dict) or not isinstance(payload.get("class"), str):
        return None
    found = WRAPPED_IDS.get(payload["class"])
    args = payload.get("args")
    if found is None or not isinstance(args, list) or not args or not isinstance(args[0], dict):
        return None
    value = args[0].get(found[0])
    return (found[1], value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class WorkerId:
    """A worker id, ``host:pid:queue1,queue2`` (``Worker#to_s``), as far as it reads."""

    text: str
    host: str
    pid: str
    queues: tuple[str, ...]
    complete: bool  # host, pid and queues are all there

    @property
    def well_formed(self) -> bool:
        return self.complete and self.pid.isdigit()


def parse_worker_id(text: str) -> WorkerId:
    """Parse a worker id like Ruby's ``Worker.find`` (``id.split(':', 3)``: at most two
    splits, so queue names may contain colons); a malformed id still gives its parts."""
    parts = str(text).split(":", 2)
    host = parts[0]
    pid = parts[1] if len(parts) > 1 else ""
    queues = tuple(q for q in parts[2].split(",") if q) if len(parts) == 3 else ()
    return WorkerId(text=str(text), host=host, pid=pid, queues=queues, complete=len(parts) == 3)


def pauses_workers(value: str | None) -> bool:
    """Whether a ``pause-all-workers`` value pauses workers: ``"true"`` after stripping,
    in any case, as Ruby's ``Worker#paused?`` reads it; anything else (or none) does not."""
    return (value or "").strip().lower() == "true"
