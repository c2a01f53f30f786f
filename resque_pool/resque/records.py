"""Reading the records Resque keeps in Redis, one parser each, shared by the worker, the
manager and the dashboard.

Other clients (Ruby's Resque, resque-web, scripts) write these records too, so every
parser here accepts what they write and never raises on something odd: it says what it
could read.
"""

from __future__ import annotations

PAUSE_ALL_WORKERS = "pause-all-workers"


def pauses_workers(value: str | None) -> bool:
    """Whether a ``pause-all-workers`` value pauses workers: ``"true"`` after stripping,
    in any case, as Ruby's ``Worker#paused?`` reads it; anything else (or none) does not."""
    return (value or "").strip().lower() == "true"
