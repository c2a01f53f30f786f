"""Template filters for the admin's Resque dashboard."""

from __future__ import annotations

from django import template

from resque_pool.dashboard.text import query_string, reverse_path

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
