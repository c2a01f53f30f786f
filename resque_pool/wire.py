"""Resque's byte-level formats: JSON encoding and the four time formats.

See ``shared/reference/resque-wire-format.md``: compact separators, raw UTF-8, key order as
inserted; ``run_at`` is UTC ISO 8601 with ``Z``, ``started`` is Ruby's ``Time#to_s``,
``failed_at``/``retried_at`` are ``%Y/%m/%d %H:%M:%S %Z`` (we always write ``UTC``), and a
heartbeat is ISO 8601 with a numeric offset taken from the Redis server's clock.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def dumps(obj: Any) -> str:
    """JSON exactly as Ruby's MultiJson writes it for Resque."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str) -> Any:
    return json.loads(text)


def job_payload(class_name: str, args: list[Any]) -> str:
    """The queue entry for a job: keys ``class`` then ``args``."""
    return dumps({"class": class_name, "args": list(args)})


def run_at(now: datetime | None = None) -> str:
    """``Time.now.utc.iso8601``: ``2026-11-22T07:59:40Z``."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def started_at(now: datetime | None = None) -> str:
    """Ruby's ``Time.now.to_s`` in the local zone: ``2026-11-22 08:59:40 +0100``."""
    return (now or datetime.now()).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def failed_at(now: datetime | None = None) -> str:
    """``%Y/%m/%d %H:%M:%S %Z``, written in UTC with a literal ``UTC`` as the reference advises."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S UTC")


def heartbeat(server_seconds: int) -> str:
    """A heartbeat value from Redis ``TIME`` seconds: ``2026-11-22T07:59:40+00:00``."""
    return datetime.fromtimestamp(server_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def parse_time(value: str) -> datetime | None:
    """Parse any of Resque's time formats (as Ruby's ``Time.parse`` would); None if unreadable.

    A value with no zone, or a zone abbreviation other than UTC/GMT, is read as UTC, the
    same fallback Ruby's ``DateTime.parse`` applies to a missing zone.
    """
    value = (value or "").strip()
    if not value:
        return None
    candidates = [value]
    if value.endswith("Z"):
        candidates.append(value[:-1] + "+00:00")
    for text in candidates:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    head = value.rpartition(" ")[0]
    for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y/%m/%d %H:%M:%S %z"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        for text in (head, value):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                pass
    return None
