"""The schedulers' one clock: Redis's ``TIME``.

Every scheduler (each pool's child, any ``manage.py resque_scheduler``) reads the time
from the Redis server they share, for what is due (delayed jobs), for slots and for last
runs. Hosts' clocks drift and can be set wrong; if each scheduler used its own, one
whose clock ran ahead would record runs in the future and silence every schedule until
then, and a leader running behind would fire nothing while a correct scheduler stood by.
The leader lock already expires on Redis's clock (``PX``), so Redis is the one clock the
schedulers agree on anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis as redis_lib

from resque_pool.resque.connection import get_redis


def seconds(reply: tuple[int, int] | list[int]) -> float:
    """Seconds since the epoch from a ``TIME`` reply ``(seconds, microseconds)``."""
    whole, micros = reply
    return int(whole) + int(micros) / 1_000_000


def redis_time(client: redis_lib.Redis | None = None) -> float:
    """Redis's ``TIME`` as seconds since the epoch (one round trip)."""
    return seconds((client or get_redis()).time())


def now(client: redis_lib.Redis | None = None) -> datetime:
    """Redis's ``TIME`` as an aware UTC datetime."""
    return datetime.fromtimestamp(redis_time(client), UTC)
