"""Reading a delay (``30s``, ``5m``, ``2h``, ``1d``, ``90``) or an instant (ISO 8601) from
the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone

UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


# The latest instant a delayed job can be given: Python's datetimes (and the command's
# output) end with the year 9999.
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _too_far(option: str, text: str) -> ValueError:
    return ValueError(f"{option} {text!r} is too far ahead (the latest is {utc_text(LATEST)})")


def parse_delay(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``1d`` or plain seconds; ValueError with a clear message."""
    match = _DELAY.match(text.lower())
    if not match:
        raise ValueError(
            f"--in {text!r}: give a number of seconds, or a number followed by s, m, h or d "
            "(30, 30s, 5m, 2h, 1d)"
        )
    try:
        return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])
    except OverflowError:
        raise _too_far("--in", text) from None


def after(now: datetime, text: str) -> datetime:
    """``now`` plus the delay ``text`` (``--in``); ValueError past the year 9999."""
    try:
        at = now + parse_delay(text)
    except OverflowError:
        raise _too_far("--in", text) from None
    if at > LATEST:
        raise _too_far("--in", text)
    return at


def parse_at(text: str) -> datetime:
    """An ISO 8601 time (``2026-12-01T09:00``, ``…+01:00``, ``…Z``); without an offset it
    is read in Django's current time zone. Returns an aware datetime."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--at {text!r} is not an ISO 8601 time (e.g. 2026-12-01T09:00 or "
            "2026-12-01T09:00+01:00)"
        ) from None
    if timezone.is_naive(when):
        when = timezone.make_aware(when, timezone.get_current_timezone())
    try:
        past_the_end = when > LATEST
    except OverflowError:
        past_the_end = True
    if past_the_end:
        raise _too_far("--at", text)
    return when


def utc_text(when: datetime) -> str:
    """``2026-12-01T08:00:00Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
