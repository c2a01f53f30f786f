"""Reading a delay (``30s``, ``5m``, ``2h``, ``1d``, ``90``) or an instant (ISO 8601) from
the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone

UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_delay(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``1d`` or plain seconds; ValueError with a clear message."""
    match = _DELAY.match(text.lower())
    if not match:
        raise ValueError(
            f"--in {text!r}: give a number of seconds, or a number followed by s, m, h or d "
            "(30, 30s, 5m, 2h, 1d)"
        )
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])


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
    return when


def utc_text(when: datetime) -> str:
    """``2026-12-01T08:00:00Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
