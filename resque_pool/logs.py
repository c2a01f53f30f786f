"""Logging for our long-running processes: the default format and handler, JSON lines
(``RESQUE_LOG_FORMAT = "json"``) with what the process is doing, and ``LogOnce``.

The manager, the worker and their helpers repeat an operation every second or so (load
the counts, publish the state, reserve a job); when it keeps failing the same way, one
line says so and another says when it works again, instead of a line a second.

JSON lines are made with the standard library's ``json``: one formatter of a few lines
needs no dependency, and python-json-logger would add one for what is here a single
``json.dumps``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
PLAIN, JSON = "plain", "json"
LOG_FORMATS = (PLAIN, JSON)

# What this process is working on, added to each JSON line: the worker's id in a worker
# and its job children; the queue, job class and job or task id while a job runs. A plain
# dict rather than a contextvar: the heartbeat thread of a worker logs for the same job.
CONTEXT_FIELDS = ("worker", "queue", "job_class", "job_id", "task_id")
_context: dict[str, Any] = {}


def set_context(**fields: Any) -> None:
    """Add fields (names from ``CONTEXT_FIELDS``) to this process's JSON lines; a field
    given as None is removed."""
    for name, value in fields.items():
        if value is None:
            _context.pop(name, None)
        else:
            _context[name] = value


def clear_job_context() -> None:
    """The job is over: its fields go, the worker's id stays."""
    for name in CONTEXT_FIELDS[1:]:
        _context.pop(name, None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, milliseconds), ``level``, ``logger``,
    ``pid``, the context fields that apply (``extra=`` with the same names wins), the
    ``message``, and ``exception`` with the traceback when there is one. Non-ASCII text is
    escaped, so a line never fails to encode (a payload may hold lone surrogates)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
        }
        entry.update(_context)
        for name in CONTEXT_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str = PLAIN) -> None:
    """Set up logging for one of our processes (the pool, a worker, the scheduler; the
    processes they fork inherit it).

    ``plain``: a handler with time, level and pid for our logger when the project
    configured none. ``json``: the same handler when there is none, and every handler
    that writes to a stream (the console, a file) gets ``JsonFormatter``, whatever
    formatter ``LOGGING`` gave it: a process's output is then JSON lines only, the lines of
    job code and of Django included."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"RESQUE_LOG_FORMAT must be 'plain' or 'json', not {log_format!r}")
    package = logging.getLogger("resque_pool")
    if not package.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        package.addHandler(handler)
        if package.level == logging.NOTSET:
            package.setLevel(logging.INFO)
    if log_format == JSON:
        formatter = JsonFormatter()
        for handler in _all_handlers():
            if isinstance(handler, logging.StreamHandler):
                handler.setFormatter(formatter)


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        item
        for item in logging.Logger.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    return list({id(h): h for found in loggers for h in found.handlers}.values())


class LogOnce:
    """Log an error once until it changes, and (optionally) once when it clears.

    ``key`` says what counts as "the same error": usually the error's text, or a constant
    to log once for as long as a condition lasts, whatever its details.
    """

    def __init__(self, logger: logging.Logger, level: int = logging.ERROR) -> None:
        self.logger = logger
        self.level = level
        self.key: str | None = None

    @property
    def active(self) -> bool:
        """True while an error is reported and not cleared."""
        return self.key is not None

    def error(self, key: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless ``key`` is the one logged last; True if logged."""
        if key == self.key:
            return False
        self.key = key
        self.logger.log(self.level, message, *args)
        return True

    def clear(self, message: str | None = None, *args: Any) -> bool:
        """The error is gone: forget it, and log ``message`` at INFO if one was reported.
        True if there was one."""
        if self.key is None:
            return False
        self.key = None
        if message is not None:
            self.logger.info(message, *args)
        return True
