"""Reading a resque-scheduler schedule file (YAML) into ``Schedule`` rows.

Accepted per entry (the key is the schedule's name): ``cron`` (5 fields, or 6 with
seconds first, optionally followed by an IANA zone, e.g. ``"0 5 * * * America/Chicago"``)
or ``every`` (rufus durations: ``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``, or seconds);
either may be rufus' array form ``["1h", {first_in: "10s"}]``: for ``every``, rufus'
``first_in`` / ``first_at`` (and their aliases ``first``, ``first_time``) set the first run,
other options are ignored with a note; ``class`` (default: the name), ``queue``, ``args`` (a
list, or one value, as resque-scheduler wraps it), ``description``. ``rails_env``/``env``,
``persist`` are ignored; ``custom_job_class`` is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from resque_pool.config_error import ConfigError
from resque_pool.scheduler import timing
from resque_pool.scheduler.when import parse_at
from resque_pool.yaml_file import BoundedLoader, parse_yaml, read_config

# rufus-scheduler's names for the first run of a repeat job (RepeatJob#initialize).
FIRST_OPTIONS = ("first", "first_time", "first_at", "first_in")
# rufus' words for "at once" (RepeatJob::FIRSTS).
AT_ONCE = ("now", "immediately", 0)


class ScheduleFileError(ValueError):
    pass


def read(path: str) -> str:
    """The schedule file's text, read as the pool reads its configuration: a regular file
    (a FIFO or ``/dev/zero`` is refused at once), at most 1 MiB, UTF-8."""
    try:
        return read_config(path, kind="a schedule file")
    except ConfigError as error:
        raise ScheduleFileError(str(error)) from None


@dataclass
class Entry:
    name: str
    values: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    # rufus' first_in / first_at of an ``every`` entry, read at load time: the first run.
    first_run: datetime | None = None


def _interval_value(value: Any, name: str, notes: list[str], what: str) -> tuple[Any, dict]:
    """The value of ``cron:`` or ``every:`` and its rufus options (array form)."""
    options: dict[str, Any] = {}
    if isinstance(value, list):
        if not value:
            raise ScheduleFileError(f"{name}: {what} is an empty list")
        extra = value[1:]
        if len(extra) == 1 and isinstance(extra[0], dict):
            # YAML written from Ruby may keep the symbols' colon: {":first_in": "10s"}.
            options = {str(k).lstrip(":"): v for k, v in extra[0].items()}
        elif extra:
            notes.append(f"{name}: {what} options {extra!r} ignored")
        value = value[0]
    return value, options


def first_run(name: str, options: dict[str, Any], now: datetime) -> datetime | None:
    """The first run rufus' ``first_in`` / ``first_at`` asks for, or None; as rufus, a
    time in the past is refused unless ``first_at_no_error`` (then: at once)."""
    given = [option for option in FIRST_OPTIONS if options.get(option) not in (None, False)]
    if not given:
        return None
    option = given[0]
    value = options[option]
    if value in AT_ONCE or str(value).strip() in ("0", "0s"):
        return now
    try:
        return now + timedelta(seconds=timing.parse_duration(value))
    except timing.ScheduleError:
        pass
    try:
        # Without an offset, in the current time zone: TIME_ZONE in a management command.
        when = parse_at(value.isoformat() if isinstance(value, datetime) else str(value))
    except ValueError:
        raise ScheduleFileError(
            f"{name}: {option} {value!r} is neither a duration (10s, 5m) nor a time "
            "(2026-12-01 09:00:00 +0100)"
        ) from None
    if when < now:
        if options.get("first_at_no_error"):
            return now
        raise ScheduleFileError(f"{name}: cannot set {option} in the past ({value})")
    return when


def parse(text: str, now: datetime | None = None) -> list[Entry]:
    """Entries from the file's text, loaded at ``now`` (default: now); ScheduleFileError
    names the first bad entry."""
    now = now or timezone.now()
    try:
        # The pool's bounds on nodes and aliases (a 1.4 KB alias bomb otherwise runs to a
        # MemoryError), with YAML 1.1 booleans as Ruby's Psych reads this file.
        data = parse_yaml(text, "line", loader=BoundedLoader)
    except ConfigError as error:
        # "line:2: not valid YAML: …" from the pool's reader reads better as "line 2: …".
        raise ScheduleFileError(str(error).replace("line:", "line ", 1)) from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ScheduleFileError("the file must map schedule names to their settings")
    entries = []
    for name, config in data.items():
        name = str(name)
        if not isinstance(config, dict):
            raise ScheduleFileError(f"{name}: expected a mapping of settings")
        notes: list[str] = []
        if config.get("custom_job_class") not in (None, "Resque::Job"):
            raise ScheduleFileError(f"{name}: custom_job_class is not supported")
        cron = config.get("cron")
        every = config.get("every")
        if bool(cron) == bool(every):
            raise ScheduleFileError(f"{name}: give exactly one of cron and every")
        values: dict[str, Any] = {"cron": "", "interval": None}
        first = None
        try:
            if cron:
                expression, options = _interval_value(cron, name, notes, "cron")
                if options:
                    notes.append(f"{name}: cron options {options!r} ignored")
                timing.check_cron(str(expression))
                values["cron"] = str(expression)
            else:
                duration, options = _interval_value(every, name, notes, "every")
                seconds = timing.parse_duration(duration)
                timing.check_interval(max(1.0, seconds))  # under a second is rounded up
                if seconds != int(seconds):
                    notes.append(f"{name}: every {every!r} rounded up to whole seconds")
                values["interval"] = max(1, math.ceil(seconds))
                first = first_run(name, options, now)
                ignored = {
                    k: v
                    for k, v in options.items()
                    if k not in (*FIRST_OPTIONS, "first_at_no_error")
                }
                if ignored:
                    notes.append(f"{name}: every options {ignored!r} ignored")
        except timing.ScheduleError as error:
            raise ScheduleFileError(f"{name}: {error}") from None
        args = config.get("args")
        if args is None:
            args = []
        elif not isinstance(args, list):
            args = [args]  # resque-scheduler: a hash or a scalar is the one argument
        for ignored in ("rails_env", "env", "persist"):
            if ignored in config:
                notes.append(f"{name}: {ignored} ignored")
        values.update(
            job_name=str(config.get("class") or name),
            queue=str(config.get("queue") or ""),
            args=args,
            description=str(config.get("description") or ""),
        )
        entries.append(Entry(name, values, notes, first))
    return entries
