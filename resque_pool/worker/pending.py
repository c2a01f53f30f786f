"""Writes about a finished job that met a Redis outage, kept in order and retried once
Redis answers, before the worker takes another job: a job's in-flight record must not
outlive the job, and its failure entry must not be lost."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis as redis_lib

from resque_pool.resque.jobs import Job

logger = logging.getLogger(__name__)

REDIS_DOWN = (redis_lib.ConnectionError, redis_lib.TimeoutError)


class PendingWrites:
    def __init__(self) -> None:
        self._writes: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []

    def __bool__(self) -> bool:
        return bool(self._writes)

    def record(self, what: str, write: Callable[..., Any], *args: Any) -> None:
        """Run a write about a job in hand. An outage keeps it for ``retry`` (writes after
        it wait their turn); any other error is logged, never fatal to the worker."""
        if self._writes:  # keep the order: this one waits behind the earlier ones
            self.later(what, write, *args)
            return
        try:
            write(*args)
        except REDIS_DOWN as error:
            self.later(what, write, *args)
            job = next((arg for arg in args if isinstance(arg, Job)), None)
            logger.error(
                "could not record %s in Redis (%s); retrying when it answers%s",
                what,
                error,
                f"; job: {job.describe(500)}" if job else "",
            )
        except Exception:
            logger.exception("could not record %s", what)

    def later(self, what: str, write: Callable[..., Any], *args: Any) -> None:
        self._writes.append((what, write, args))

    def retry(self, final: bool = False) -> None:
        """Write what is pending, in order; raises the Redis error while it is still down
        (``final``: log and give up instead, as the worker is leaving)."""
        while self._writes:
            what, write, args = self._writes[0]
            try:
                write(*args)
            except REDIS_DOWN:
                if final:
                    logger.error("gave up recording %s: Redis is still unreachable", what)
                    self._writes.clear()
                    return
                raise
            except Exception:
                logger.exception("could not record %s", what)
            self._writes.pop(0)
            logger.info("recorded %s after the outage", what)
