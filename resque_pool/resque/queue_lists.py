"""Parsing and validating a comma-separated queue list ("high,low", "critical,*,!file_*")."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# Resque accepts any queue name; we refuse only what cannot survive a round trip through a
# comma-separated list, a worker id ("host:pid:queues") or a shell: empty names and
# whitespace inside a name.
_BAD_NAME = re.compile(r"\s")


def split_queues(text: str) -> list[str]:
    """``" high, low ,"`` -> ``["high", "low"]`` (stripped, empties dropped, order kept)."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def normalize_queue_list(text: str) -> str:
    """The canonical form of a queue list, or ValidationError with a message for a person."""
    if text is None or not str(text).strip():
        raise ValidationError("Give at least one queue name.", code="empty")
    raw_parts = [part.strip() for part in str(text).split(",")]
    if any(not part for part in raw_parts):
        raise ValidationError(
            "%(value)r has an empty queue name (two commas in a row, or a comma at an end).",
            code="empty_name",
            params={"value": text},
        )
    for part in raw_parts:
        if _BAD_NAME.search(part):
            raise ValidationError(
                "Queue name %(name)r contains whitespace.", code="whitespace", params={"name": part}
            )
        if part == "!":
            raise ValidationError("A lone '!' negates nothing.", code="bare_negation")
    if all(part.startswith("!") for part in raw_parts):
        raise ValidationError(
            "A queue list made only of negations selects no queue.", code="only_negations"
        )
    return ",".join(raw_parts)


def check_queue_name(name: str) -> str:
    """One queue to push to, or ValidationError: the rules a queue list applies to each of
    its names, and nothing a queue list would read as syntax (a comma, a leading ``!``)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("Give a queue name (it is empty).", code="empty")
    if _BAD_NAME.search(name):
        raise ValidationError(
            "Queue name %(name)r contains whitespace.", code="whitespace", params={"name": name}
        )
    if "," in name:
        raise ValidationError(
            "Queue name %(name)r contains a comma: a job goes to one queue.",
            code="comma",
            params={"name": name},
        )
    if name.startswith("!"):
        raise ValidationError(
            "Queue name %(name)r starts with '!', which a queue list reads as a negation.",
            code="negation",
            params={"name": name},
        )
    return name
