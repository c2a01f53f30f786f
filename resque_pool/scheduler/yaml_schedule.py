"""Reading a resque-scheduler schedule file (YAML) into ``Schedule`` rows.

Accepted per entry (the key is the schedule's name): ``cron`` (5 fields, or 6 with
seconds first, optionally followed by an IANA zone, e.g. ``"0 5 * * * America/Chicago"``)
or ``every`` (rufus durations: ``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``, or seconds);
either may be rufus' array form ``["1h", {first_in: "10s"}]``, whose options are ignored
(our first run of an interval comes one interval after loading); ``class`` (default: the
name), ``queue``, ``args`` (a list, or one value, as resque-scheduler wraps it),
``description``. ``rails_env``/``env``, ``persist`` are ignored; ``custom_job_class`` is
refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from resque_pool.scheduler import timing


class ScheduleFileError(ValueError):
    pass


@dataclass
class Entry:
    name: str
    values: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _interval_value(value: Any, name: str, notes: list[str], what: str) -> Any:
    if isinstance(value, list):
        if not value:
            raise ScheduleFileError(f"{name}: {what} is an empty list")
        if len(value) > 1:
            notes.append(f"{name}: {what} options {value[1:]!r} ignored")
        value = value[0]
    return value


def parse(text: str) -> list[Entry]:
    """Entries from the file's text; ScheduleFileError names the first bad entry."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScheduleFileError(f"not YAML: {str(error).splitlines()[0]}") from None
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
        try:
            if cron:
                expression = str(_interval_value(cron, name, notes, "cron"))
                timing.check_cron(expression)
                values["cron"] = expression
            else:
                seconds = timing.parse_duration(_interval_value(every, name, notes, "every"))
                if seconds != int(seconds):
                    notes.append(f"{name}: every {every!r} rounded up to whole seconds")
                values["interval"] = max(1, math.ceil(seconds))
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
        entries.append(Entry(name, values, notes))
    return entries
