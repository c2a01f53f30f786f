"""When a recurring schedule runs: cron expressions (with cronsim) and intervals.

Cron expressions have 5 fields, or 6 with seconds first (rufus-scheduler's form), and may
end with an IANA time zone name (``"0 5 * * * America/Chicago"``), which overrides the
schedule's own zone. They are evaluated in that zone's wall-clock time; daylight saving
transitions follow Debian cron, as cronsim implements it: a run whose time the spring
transition skips happens right after the jump, a run whose time the autumn transition
repeats happens once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from django.conf import settings as django_settings

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|[smhdwy]|M)?")
_UNITS = {
    None: 1,
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "M": 30 * 86400,
    "y": 365 * 86400,
}


# The longest interval a schedule may have. Longer ones are almost always a typo (10000y),
# and an interval of billions of seconds overflows date arithmetic when the next run is
# computed (OverflowError), which no schedule should be able to cause.
MAX_INTERVAL = 365 * 86400

# Each cron field's values, in the order of a 6-field expression (seconds first), with
# the names cronsim gives them in its errors.
_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_STEP = re.compile(r"/(\d+)")


class ScheduleError(ValueError):
    """A cron expression, interval or time zone that cannot be used."""


def check_interval(seconds: float) -> None:
    """ScheduleError unless ``seconds`` is between one second and one year."""
    if seconds < 1:
        raise ScheduleError("The interval is at least one second.")
    if seconds > MAX_INTERVAL:
        raise ScheduleError(
            f"The interval is at most one year ({MAX_INTERVAL} seconds); "
            f"{seconds:.0f} seconds is longer."
        )


def zone(name: str) -> tzinfo:
    """The named IANA zone; blank means Django's ``TIME_ZONE``."""
    name = name.strip() or getattr(django_settings, "TIME_ZONE", None) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def split_cron(expression: str) -> tuple[str, str | None]:
    """``("0 5 * * *", "America/Chicago")`` from rufus' ``"0 5 * * * America/Chicago"``:
    a last token that names an IANA zone is the zone (no cron field can name one)."""
    parts = expression.split()
    if len(parts) >= 6 and re.search(r"[A-Za-z]", parts[-1]):
        if "/" in parts[-1] and re.search(r"[A-Za-z]{2}", parts[-1]):
            return " ".join(parts[:-1]), parts[-1]  # Area/City: a zone, known or not
        try:
            ZoneInfo(parts[-1])
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return " ".join(parts[:-1]), parts[-1]
    return " ".join(parts), None


def check_cron(expression: str) -> None:
    """ScheduleError with cronsim's reason when the expression cannot be used."""
    fields, zone_name = split_cron(expression)
    if zone_name:
        zone(zone_name)
    if len(fields.split()) not in (5, 6):
        raise ScheduleError(
            f"cron {expression!r}: expected 5 fields (minute hour day month weekday) or 6 "
            "with seconds first, optionally followed by a time zone"
        )
    try:
        CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise ScheduleError(f"cron {expression!r}: {error}") from None
    _check_steps(expression, fields.split())


def _check_steps(expression: str, parts: list[str]) -> None:
    """cronsim takes any step (``*/99999999999999999999`` runs once an hour); a step larger
    than its field's range is a mistake, so it is refused with the range."""
    named = _FIELDS if len(parts) == 6 else _FIELDS[1:]
    for part, (name, low, high) in zip(parts, named, strict=True):
        for step in _STEP.findall(part):
            if int(step) > high - low + 1:
                shown = step if len(step) <= 12 else step[:12] + "…"
                raise ScheduleError(
                    f"cron {expression!r}: Bad {name}: the step {shown} is larger than the "
                    f"field's range ({low}-{high})"
                )


def next_cron(expression: str, zone_name: str, after: datetime) -> datetime:
    """The first run strictly after ``after`` (aware), as an aware UTC datetime."""
    fields, inline_zone = split_cron(expression)
    local = zone(inline_zone or zone_name)
    start = after.astimezone(local)
    try:
        runs = CronSim(fields, start)
        found = next(runs)
        # cronsim walks wall-clock time: asked during the hour an autumn transition
        # repeats, it can answer the first pass of that hour, which is already over.
        while found <= after:
            found = next(runs)
    except (CronSimError, StopIteration) as error:
        raise ScheduleError(f"cron {expression!r}: {error}") from None
    return found.astimezone(UTC)


def parse_duration(text: str | int | float) -> float:
    """rufus-scheduler durations: ``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``; a bare number
    is seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        cleaned = str(text).strip()
        pos, seconds = 0, 0.0
        while pos < len(cleaned):
            match = _DURATION.match(cleaned, pos)
            if not match or match.end() == pos:
                raise ScheduleError(f"interval {text!r}: use e.g. 30s, 5m, 1h30m, 2d, 1w")
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if not cleaned:
            raise ScheduleError("interval is empty")
    if seconds <= 0:
        raise ScheduleError(f"interval {text!r} must be longer than zero")
    return seconds


def next_interval(every: float, after: datetime) -> datetime:
    return (after + timedelta(seconds=every)).astimezone(UTC)
