"""Template filters for the admin's Resque dashboard."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import conditional_escape, format_html

from resque_pool.dashboard.text import query_string, reverse_path
from resque_pool.resque import wire

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """``3725`` -> ``1h 2m``; ``None`` -> ``?``; negative (clock skew) -> ``0s``."""
    if seconds is None or seconds == "":
        return "?"
    try:
        seconds = max(int(seconds), 0)
    except (TypeError, ValueError):
        return "?"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# The most of one payload a page shows; the rest is one link away (``whole_value``).
PAYLOAD_LIMIT = 64 * 1024


def _size(count: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


@register.simple_tag
def payload(text, key: str, index=None) -> str:
    """``text`` escaped, cut after ``PAYLOAD_LIMIT`` characters with its size and a link to
    the whole stored value (``key``, and ``index`` in a list)."""
    text = "" if text is None else str(text)
    if len(text) <= PAYLOAD_LIMIT:
        return conditional_escape(text)
    query = {"key": key} if index is None else {"key": key, "index": index}
    link = reverse("admin:resque_pool_dashboard_value") + "?" + query_string(query)
    return format_html(
        '{}<span class="resque-cut">… cut: the first {} of {} are shown; '
        '<a href="{}">the whole value</a></span>',
        text[:PAYLOAD_LIMIT],
        _size(PAYLOAD_LIMIT),
        _size(len(text.encode("utf-8", "surrogateescape"))),
        link,
    )


# The dashboard's one time format: date, time to the second, zone (the current one).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


@register.filter
def when(value) -> str:
    """A time as every dashboard page shows it (``2026-11-24 18:00:00 UTC``): a datetime,
    or a stored time in any of Resque's formats, read as ``wire.parse_time`` reads it. A
    text that is not a time is shown as it is; ``None`` or empty is ``–``."""
    if value is None or value == "":
        return "–"
    moment = value if isinstance(value, datetime) else wire.parse_time(str(value))
    if moment is None:
        return str(value)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    try:
        return timezone.localtime(moment).strftime(TIME_FORMAT)
    except (OverflowError, ValueError):
        return moment.isoformat()


def _reverse(name: str, value) -> str:
    from django.urls import NoReverseMatch

    try:
        return reverse_path(f"admin:resque_pool_dashboard_{name}", value)
    except NoReverseMatch:  # an empty or odd name from Redis: no link rather than a 500
        return ""


@register.filter
def queue_url(name) -> str:
    return _reverse("queue", name)


@register.filter
def worker_url(worker_id) -> str:
    return _reverse("worker", worker_id)


@register.filter
def lines(values) -> str:
    """Join a backtrace's frames one per line."""
    return "\n".join(str(value) for value in values or [])


@register.filter
def key_url(key) -> str:
    return _reverse("key", key)


@register.filter
def query(value, name: str) -> str:
    """``?class=…`` for a value from Redis, with its original bytes (``urlencode`` would
    fail on bytes that are not UTF-8)."""
    return "?" + query_string({name: str(value)})


@register.filter
def query_of(values: dict) -> str:
    """``?class=…&queue=…`` for a dict of filters (nothing when it is empty)."""
    return "?" + query_string(values) if values else ""
