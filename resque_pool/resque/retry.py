"""Retrying failed jobs on resque-retry's key: ``@job(retry=Retry(...))``.

State lives where resque-retry keeps it, ``resque-retry:<Job>:<sha1 of args joined with
'-'>`` under the namespace (no suffix without arguments), so a Ruby resque-retry job and
ours count the same attempts when their arguments join the same way. The counter is
advanced when an attempt fails (resque-retry advances it before each attempt and reads it
on failure: the value at that moment is the same), so a job that was interrupted and
requeued, rather than failed, does not use up an attempt. Counting the attempt, pushing
the retry and removing the attempt's in-flight record are one transaction
(``resque/outcomes.py``, ``record_failure``): however processes die, an attempt is
counted and retried once.

While a job is being retried its failures stay out of ``failed`` (resque-retry's
``MultipleWithRetrySuppression``); the final give-up writes one failure entry whose error
says how many attempts were made. Delays go through the delayed queue.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from resque_pool.errors import JobError
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key

logger = logging.getLogger(__name__)

GAVE_UP = re.compile(r"\(gave up after (\d+) attempts?\)$")


@dataclass(frozen=True)
class Retry:
    """How a job is retried.

    - ``limit``: retries after the first attempt (resque-retry's ``@retry_limit``; 0 never,
      -1 forever).
    - ``delay``: seconds before a retry, or a backoff list indexed by retry number (the
      last value repeats), as ``@backoff_strategy``.
    - ``jitter``: ``(min, max)`` multiplicands applied to each delay
      (``@retry_delay_multiplicand_min/max``), e.g. ``(0.8, 1.2)``.
    - ``retry_on``: only these exceptions retry (default: every exception);
      ``give_up_on``: these give up at once (``@fatal_exceptions``). A payload that cannot
      run at all (unknown job, bad arguments) always gives up at once.
    - ``queue``: where retries go (default: the queue the attempt came from).
    - ``expire_key_after``: seconds the attempt counter outlives the retry's delay.
    - ``on_retry(exception, attempt, *args)`` / ``on_give_up(exception, attempts, *args)``:
      resque-retry's try-again and give-up callbacks.
    """

    limit: int = 1
    delay: float | Sequence[float] = 0
    jitter: tuple[float, float] | None = None
    retry_on: tuple[type[BaseException], ...] | None = None
    give_up_on: tuple[type[BaseException], ...] = ()
    queue: str | None = None
    expire_key_after: float | None = 3600
    on_retry: Callable[..., Any] | None = None
    on_give_up: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or isinstance(self.limit, bool):
            raise TypeError("Retry(limit=...) takes an integer")
        delays = self.delays
        if not delays or any(not isinstance(d, int | float) or d < 0 for d in delays):
            raise ValueError("Retry(delay=...) takes seconds >= 0, or a non-empty list of them")
        if self.jitter is not None and not (0 <= self.jitter[0] <= self.jitter[1]):
            raise ValueError("Retry(jitter=(min, max)) needs 0 <= min <= max")

    @property
    def delays(self) -> list[float]:
        if isinstance(self.delay, int | float) and not isinstance(self.delay, bool):
            return [float(self.delay)]
        return list(self.delay)

    def delay_for(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (0-based, resque-retry's
        ``retry_attempt``)."""
        delays = self.delays
        seconds = delays[attempt] if attempt < len(delays) else delays[-1]
        if self.jitter is not None:
            seconds *= random.uniform(*self.jitter)
        return seconds

    def retries(self, exception: BaseException, attempt: int) -> bool:
        if isinstance(exception, JobError):
            return False
        if self.give_up_on and isinstance(exception, self.give_up_on):
            return False
        if self.retry_on is not None and not isinstance(exception, self.retry_on):
            return False
        if self.limit == 0:
            return False
        return self.limit < 0 or attempt < self.limit


def as_retry(value: Any) -> Retry | None:
    """``@job(retry=...)``: a ``Retry``, an int (the limit), or None."""
    if value is None or isinstance(value, Retry):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Retry(limit=value)
    raise TypeError(f"@job(retry=...) takes a Retry or an integer limit, not {value!r}")


def ruby_join(args: list[Any]) -> str:
    """``args.join('-')`` as Ruby writes it for flat strings, integers, booleans and nil;
    nested lists are flattened as Ruby's join does. Floats and hashes may differ from Ruby
    (Python's ``repr`` and JSON instead of Ruby's ``to_s``/``inspect``)."""
    parts = []
    for arg in args:
        if isinstance(arg, list):
            parts.append(ruby_join(arg))
        elif arg is None:
            parts.append("")
        elif isinstance(arg, bool):
            parts.append("true" if arg else "false")
        elif isinstance(arg, str):
            parts.append(arg)
        elif isinstance(arg, int | float):
            parts.append(repr(arg))
        else:
            parts.append(wire.dumps(arg))
    return "-".join(parts)


def retry_key(class_name: str, args: list[Any]) -> str:
    """``resque-retry:<Job>:<sha1>`` (whitespace removed, as resque-retry does), namespaced."""
    joined = ruby_join(args)
    parts = ["resque-retry", class_name]
    if joined:
        parts.append(hashlib.sha1(joined.encode("utf-8", "surrogateescape")).hexdigest())
    return key(re.sub(r"\s", "", ":".join(parts)))


def attempts_so_far(class_name: str, args: list[Any]) -> int | None:
    """The retry attempt a job is on (0 after its first failure), or None."""
    value = get_redis().get(retry_key(class_name, args))
    return int(value) if value is not None else None


def succeeded(class_name: str, args: list[Any]) -> None:
    """A retried job that ran: forget its attempts (resque-retry's after_perform)."""
    get_redis().delete(retry_key(class_name, args))


def attempts_in(entry: dict[str, Any]) -> int | None:
    """How many attempts a failure entry's give-up says were made, or None."""
    match = GAVE_UP.search(str(entry.get("error") or ""))
    return int(match.group(1)) if match else None


def call_quietly(callback: Callable[..., Any] | None, *args: Any) -> None:
    """A retry policy's callback; one that raises is logged (the outcome is written)."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        logger.exception("retry callback %r raised", callback)
