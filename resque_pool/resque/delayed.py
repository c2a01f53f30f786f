"""Delayed jobs on resque-scheduler's keys (its ``delaying_extensions.rb``).

An item is the compact JSON of ``{"class": …, "args": […], "queue": …}``. Scheduling it
for the instant ``ts`` (whole seconds since the epoch, UTC) writes, under the namespace:

- ``RPUSH delayed:<ts> <item>``
- ``SADD timestamps:<item> delayed:<ts>`` (where this exact item is scheduled)
- ``ZADD delayed_queue_schedule <ts> <ts>``

so Ruby's resque-scheduler fires what we delay and our scheduler fires what Ruby delays.
Moving due items to their queues is ``resque_pool.scheduler.mover``; scheduling one with
its hooks (``enqueue_at``, ``enqueue_in``, ``remove_delayed``) is ``resque/producer.py``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings as django_settings
from django.utils import timezone

from resque_pool.resque import control, wire
from resque_pool.resque.connection import get_redis, key

logger = logging.getLogger(__name__)

SCHEDULE = "delayed_queue_schedule"


@dataclass(frozen=True)
class DelayedJob:
    """An item waiting in the delayed queue."""

    timestamp: int  # seconds since the epoch, the member of delayed_queue_schedule
    queue: str
    item: str  # the exact bytes in delayed:<timestamp>

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)

    @cached_property
    def payload(self) -> Any:
        """The item decoded (None when it is not JSON), decoded once: ``class_name`` and
        ``args`` both read it."""
        try:
            return wire.loads(self.item)
        except ValueError:
            return None

    @property
    def class_name(self) -> str | None:
        payload = self.payload
        if isinstance(payload, dict) and isinstance(payload.get("class"), str):
            return payload["class"]
        return None

    @property
    def args(self) -> list[Any]:
        payload = self.payload
        if isinstance(payload, dict) and isinstance(payload.get("args"), list):
            return payload["args"]
        return []


def timestamp_member(timestamp: int) -> str:
    """``delayed:<ts>`` as the reverse index holds it: redis-namespace prefixes keys, not
    set members, so Ruby's index names the list without the namespace."""
    return f"delayed:{int(timestamp)}"


def timestamp_key(timestamp: int) -> str:
    return key(timestamp_member(timestamp))


def index_key(item: str) -> str:
    return key("timestamps", item)


def item_for(class_name: str, args: list[Any], queue: str) -> str:
    """``job_to_hash_with_queue``: ``class``, ``args``, ``queue`` in that order, compact."""
    return wire.dumps({"class": class_name, "args": list(args), "queue": queue})


def to_timestamp(when: datetime | int | float) -> int:
    """Whole seconds since the epoch, as Ruby's ``Time#to_i``.

    A naive datetime follows Django's rule for model fields: it is read in the default time
    zone (``TIME_ZONE``), with a RuntimeWarning when ``USE_TZ`` is on. Numbers are taken
    as seconds since the epoch.
    """
    if isinstance(when, datetime):
        if timezone.is_naive(when):
            if getattr(django_settings, "USE_TZ", True):
                warnings.warn(
                    f"enqueue_at received a naive datetime ({when}) while time zone support "
                    "is active; it is read in the default time zone",
                    RuntimeWarning,
                    stacklevel=3,
                )
            when = timezone.make_aware(when, timezone.get_default_timezone())
        return int(when.timestamp())
    if isinstance(when, int | float) and not isinstance(when, bool):
        return int(when)
    raise TypeError(f"enqueue_at needs a datetime or seconds since the epoch, not {when!r}")


def to_seconds(delay: timedelta | int | float) -> float:
    if isinstance(delay, timedelta):
        return delay.total_seconds()
    if isinstance(delay, int | float) and not isinstance(delay, bool):
        return float(delay)
    raise TypeError(f"enqueue_in needs seconds or a timedelta, not {delay!r}")


def delayed_push(timestamp: int, item: str) -> None:
    """The three writes of resque-scheduler's ``delayed_push``, in one transaction."""
    pipe = get_redis().pipeline(transaction=True)
    queue_delayed_push(pipe, timestamp, item)
    pipe.execute()


def queue_delayed_push(pipe: Any, timestamp: int, item: str) -> None:
    """Queue ``delayed_push``'s three writes on ``pipe`` (a retry writes them in the same
    transaction as its attempt's outcome, ``resque/outcomes.py``)."""
    pipe.rpush(timestamp_key(timestamp), item)
    pipe.sadd(index_key(item), timestamp_member(timestamp))
    pipe.zadd(key(SCHEDULE), {str(int(timestamp)): int(timestamp)})
    # The schedulers sleep until their next due item (scheduler/process.py): this one may
    # be due sooner.
    pipe.publish(control.channel(), f"{control.DELAYED} {int(timestamp)}")


def remove_delayed_item(item: str) -> int:
    """Remove every scheduled copy of these exact bytes; the number removed.

    As resque-scheduler's ``remove_delayed_job``: the reverse index says where the item
    is; a timestamp left empty is dropped from the schedule by the next move.
    """
    client = get_redis()
    index = index_key(item)
    members = client.smembers(index)
    if not members:
        return 0
    pipe = client.pipeline(transaction=True)
    for member in members:
        pipe.lrem(key(member), 0, item)
        pipe.srem(index, member)
    replies = pipe.execute()
    return sum(replies[0::2])


def delayed_count() -> int:
    """Every delayed item, over every timestamp (``count_all_scheduled_jobs``)."""
    client = get_redis()
    stamps = client.zrange(key(SCHEDULE), 0, -1)
    if not stamps:
        return 0
    pipe = client.pipeline(transaction=False)
    for stamp in stamps:
        pipe.llen(key("delayed", stamp))
    return sum(pipe.execute())


def timestamp_count() -> int:
    """How many distinct times hold delayed items (``delayed_queue_schedule_size``)."""
    return get_redis().zcard(key(SCHEDULE))


def timestamps(start: int = 0, count: int = 50) -> list[int]:
    """Scheduled times in order, a page at a time (``delayed_queue_peek``)."""
    stamps = get_redis().zrange(key(SCHEDULE), start, start + count - 1)
    return [int(stamp) for stamp in stamps]


def items_at(timestamp: int, start: int = 0, count: int = 50) -> list[DelayedJob]:
    """The items scheduled for one time, a page at a time (``delayed_timestamp_peek``)."""
    raws = get_redis().lrange(timestamp_key(timestamp), start, start + count - 1)
    return [DelayedJob(timestamp=int(timestamp), queue=_queue_of(raw), item=raw) for raw in raws]


def _queue_of(raw: str) -> str:
    try:
        payload = wire.loads(raw)
    except ValueError:
        return ""
    queue = payload.get("queue") if isinstance(payload, dict) else None
    return queue if isinstance(queue, str) else ""
