"""How an idle worker waits: blocked on the wake-up keys of its queues (``resque/wakeup.py``)
for at most a second at a time, so it takes a job pushed through ``enqueue()`` within
milliseconds, while signals, pausing, a changed queue set and its manager are still looked
at every second. Jobs pushed by other clients are found by the poll at ``INTERVAL``.
"""

from __future__ import annotations

import logging

import redis as redis_lib

from resque_pool.resque.connection import get_redis
from resque_pool.resque.wakeup import wait_for_token

logger = logging.getLogger(__name__)

# Longest single block: signals, pausing, queue-set changes and the manager check wait at
# most this long.
MAX_BLOCK = 1.0


class WakeUps:
    def __init__(self) -> None:
        self._fractional: bool | None = None  # Redis >= 6 takes sub-second BLPOP timeouts

    def block_for(self, remaining: float) -> float | None:
        """How long to block now: at most a second, less than the client's reply bound
        (a worker watched for hangs has one); None when blocking cannot fit."""
        seconds = min(remaining, MAX_BLOCK)
        bound = get_redis().connection_pool.connection_kwargs.get("socket_timeout")
        if bound:
            seconds = min(seconds, bound / 2)
        if seconds >= 1:
            return 1.0
        if seconds < 0.01 or not self._fractional_timeouts():
            return None
        return round(seconds, 3)

    def wait(self, queues: list[str], remaining: float) -> bool | None:
        """Block on ``queues``' wake-up keys; True if a token came, False on time-out, None
        when this wait could not block (the caller sleeps instead)."""
        seconds = self.block_for(remaining)
        if seconds is None or not queues:
            return None
        return wait_for_token(queues, seconds) is not None

    def _fractional_timeouts(self) -> bool:
        if self._fractional is None:
            try:
                version = str(get_redis().info("server").get("redis_version", "0"))
                self._fractional = int(version.split(".")[0]) >= 6
            except (redis_lib.ResponseError, ValueError):  # INFO renamed or refused
                self._fractional = False
        return self._fractional
