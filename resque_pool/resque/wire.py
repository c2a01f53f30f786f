"""Resque's byte-level formats: JSON encoding and the four time formats.

As ``docs/wire-format.md`` promises (after Resque's ``lib/resque.rb``, ``lib/resque/worker.rb``
and ``lib/resque/failure/redis.rb``): compact separators, raw UTF-8, key order as inserted;
``run_at`` is UTC ISO 8601 with ``Z``, ``started`` is Ruby's ``Time#to_s``,
``failed_at``/``retried_at`` are ``%Y/%m/%d %H:%M:%S %Z`` (we always write ``UTC``), and a
heartbeat is ISO 8601 with a numeric offset taken from the Redis server's clock.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# Lone surrogates that surrogateescape cannot turn back into bytes: they come from JSON
# "\ud800"-style escapes written by another client, and are written back as escapes.
_UNENCODABLE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def dumps(obj: Any) -> str:
    """JSON exactly as Ruby's MultiJson writes it for Resque."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if _UNENCODABLE.search(text):
        text = _UNENCODABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    return text


# Lone surrogates of any kind: text holding one is not valid UTF-8 as it stands.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Deepest payload we splice into another JSON document (Ruby's JSON.parse refuses more than
# 100 levels, and the document around the payload adds one).
MAX_SPLICE_DEPTH = 64
# Python's json refuses to convert longer integers (sys.get_int_max_str_digits()).
MAX_INT_DIGITS = 4300


def loads(text: str) -> Any:
    """Decode JSON; a value nested too deep to decode is a ``ValueError`` like any other
    unreadable text (another client may push ``[[[[...]]]]`` 10,000 deep)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


_PAYLOAD_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def loads_payload(text: str) -> Any:
    """Strict JSON for a job payload: ValueError (with a reason) for anything Python cannot
    hand to a job and write back unchanged: NaN/Infinity, numbers out of range, integers
    too long to convert, nesting too deep for the parser."""
    try:
        if isinstance(text, str) and not text.startswith("\ufeff"):
            return _PAYLOAD_DECODER.decode(text)  # what json.loads() does, minus a new decoder
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _short_int(text: str) -> str:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError("integer too long")
    return text


def splicable(text: str, require_object: bool = False) -> bool:
    """Whether ``text`` can be spliced byte for byte into another JSON document that Python
    and Ruby can read back: strict JSON syntax (numbers are not converted), integers of at
    most ``MAX_INT_DIGITS`` digits, valid UTF-8, at most ``MAX_SPLICE_DEPTH`` deep.
    The reserve script in ``resque/reserve.py`` applies the same rules in Lua."""
    if _SURROGATE.search(text) is not None or "\x00" in text:
        return False
    try:
        value = json.loads(
            text, parse_constant=_reject_constant, parse_float=str, parse_int=_short_int
        )
    except (ValueError, RecursionError):
        return False
    if require_object and not isinstance(value, dict):
        return False
    return _depth(text) <= MAX_SPLICE_DEPTH


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _depth(text: str) -> int:
    depth = deepest = 0
    for char in _JSON_STRING.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def job_payload(class_name: str, args: list[Any]) -> str:
    """The queue entry for a job: keys ``class`` then ``args``."""
    return dumps({"class": class_name, "args": list(args)})


_run_at_now: tuple[int, str] = (-1, "")  # (epoch second, its run_at), for the next call


def run_at(now: datetime | None = None) -> str:
    """``Time.now.utc.iso8601``: ``2026-11-22T07:59:40Z``."""
    if now is not None:
        return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Once per second, not once per job: the same clock as datetime.now(), floored alike.
    global _run_at_now
    second = int(time.time())
    if _run_at_now[0] != second:
        _run_at_now = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _run_at_now[1]


def started_at(now: datetime | None = None) -> str:
    """Ruby's ``Time.now.to_s`` in the local zone: ``2026-11-22 08:59:40 +0100``."""
    return (now or datetime.now()).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def failed_at(now: datetime | None = None) -> str:
    """``%Y/%m/%d %H:%M:%S %Z``, in UTC with a literal ``UTC``: no zone abbreviation to guess."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S UTC")


def heartbeat(server_seconds: int) -> str:
    """A heartbeat value from Redis ``TIME`` seconds: ``2026-11-22T07:59:40+00:00``."""
    return datetime.fromtimestamp(server_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


# Zone abbreviations Ruby's Time.parse/DateTime.parse understand that Ruby hosts commonly
# write into failed_at (a subset of Ruby's Date::ZONE_TABLE), as offsets in hours.
ZONE_OFFSETS: dict[str, float] = {
    "UTC": 0,
    "UT": 0,
    "GMT": 0,
    "Z": 0,
    "WET": 0,
    "WEST": 1,
    "BST": 1,
    "IST": 5.5,
    "CET": 1,
    "CEST": 2,
    "MET": 1,
    "MEST": 2,
    "EET": 2,
    "EEST": 3,
    "MSK": 3,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
    "AKST": -9,
    "AKDT": -8,
    "HST": -10,
    "JST": 9,
    "KST": 9,
    "HKT": 8,
    "SGT": 8,
    "AEST": 10,
    "AEDT": 11,
    "ACST": 9.5,
    "AWST": 8,
    "NZST": 12,
    "NZDT": 13,
}


def parse_time(value: str) -> datetime | None:
    """Parse any of Resque's time formats (as Ruby's ``Time.parse`` would); None if unreadable.

    ISO 8601 (``Z`` or an offset), Ruby's ``Time#to_s`` (``+0100``), and ``failed_at``'s
    ``%Y/%m/%d %H:%M:%S %Z`` with a zone abbreviation from ``ZONE_OFFSETS`` or a numeric
    offset. A missing or unknown zone is read as UTC, as Ruby's ``DateTime.parse`` reads a
    missing one.
    """
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        pass
    else:
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    head, _, zone = value.rpartition(" ")
    for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y/%m/%d %H:%M:%S %z"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    offset = _numeric_zone(zone)
    if offset is None:
        offset = ZONE_OFFSETS.get(zone.upper())
    for text, tz in ((head, offset), (value, 0)):
        for fmt in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
            try:
                naive = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return naive.replace(tzinfo=timezone(timedelta(hours=tz or 0)))
    return None


_NUMERIC_ZONE = re.compile(r"^([+-])(\d\d):?(\d\d)?$")


def _numeric_zone(zone: str) -> float | None:
    """``+03``, ``-0530``, ``+05:30`` (what ``%Z`` gives in zones without an abbreviation)."""
    match = _NUMERIC_ZONE.match(zone)
    if not match:
        return None
    sign, hours, minutes = match.groups()
    value = int(hours) + int(minutes or 0) / 60
    return -value if sign == "-" else value
