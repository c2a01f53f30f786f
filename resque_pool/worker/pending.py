"""Writes about a finished job that Redis could not take, kept in order and made once it
takes writes again, before the worker takes another job.

"Could not take" is an outage (``resque/outages.py``): Redis does not answer, or it refuses
writes (out of memory, read-only, ...). Each outcome is one transaction that also removes
the job's in-flight record (``resque/outcomes.py``), so while it waits here the record
stays in Redis: should the worker die meanwhile, its manager applies the loss policy to
it. The worker reserves nothing while a write waits (back-pressure): a worker that kept
taking jobs it cannot record the end of would only pile them up in its memory.

An error that waiting will not heal (``WRONGTYPE`` on a key someone overwrote, a script
error) is logged with the job and the write dropped; ``forget`` then removes what is left
of the job's in-flight record, so the worker does not take the same job again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis as redis_lib

from resque_pool.resque.jobs import Job
from resque_pool.resque.outages import describe, outage

logger = logging.getLogger(__name__)


class PendingWrites:
    def __init__(self, forget: Callable[[], None] | None = None) -> None:
        self._writes: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._forget = forget

    def __bool__(self) -> bool:
        return bool(self._writes)

    def record(self, what: str, write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Make a write about a job in hand. An outage keeps it for ``retry`` (writes after
        it wait their turn); any other error is logged, never fatal to the worker."""
        if self._writes:  # keep the order: this one waits behind the earlier ones
            self._writes.append((what, write, args, kwargs))
            return
        try:
            write(*args, **kwargs)
        except redis_lib.RedisError as error:
            if outage(error) is None:
                self._failed_for_good(what, args, error)
                return
            self._writes.append((what, write, args, kwargs))
            job = next((arg for arg in args if isinstance(arg, Job)), None)
            logger.error(
                "could not record %s: %s; kept until Redis takes it%s",
                what,
                describe(error),
                f"; job: {job.describe(500)}" if job else "",
            )
        except Exception:
            logger.exception("could not record %s", what)

    def retry(self, final: bool = False) -> None:
        """Make what is pending, in order; raises the Redis error while the outage lasts
        (``final``: log and give up instead, as the worker is leaving: the in-flight record
        is still in Redis, for the loss policy)."""
        while self._writes:
            what, write, args, kwargs = self._writes[0]
            try:
                write(*args, **kwargs)
            except redis_lib.RedisError as error:
                if outage(error) is None:
                    self._failed_for_good(what, args, error)
                elif final:
                    logger.error(
                        "gave up recording %s: %s; the job stays recorded as in flight",
                        what,
                        describe(error),
                    )
                    self._writes.clear()
                    return
                else:
                    raise
            except Exception:
                logger.exception("could not record %s", what)
            else:
                logger.info("recorded %s after the outage", what)
            self._writes.pop(0)

    def forget(self) -> None:
        """Remove what is left of the in-flight record of a job whose outcome could not be
        written for good (logged where it failed), so the worker does not take it again."""
        if self._forget is not None:
            try:
                self._forget()
            except redis_lib.RedisError as error:
                logger.error("could not remove the in-flight record: %s", error)

    def _failed_for_good(self, what: str, args: tuple[Any, ...], error: Exception) -> None:
        # Everything the write would have said goes to the log: the job and its failure.
        job = next((arg for arg in args if isinstance(arg, Job)), None)
        failure = next((arg for arg in args if isinstance(arg, BaseException)), None)
        logger.error(
            "could not record %s (%s: %s), and waiting will not help; dropped%s%s",
            what,
            type(error).__name__,
            error,
            f"; job: {job.describe(2000)}" if job else "",
            f"; its failure: {type(failure).__name__}: {failure}" if failure else "",
        )
        self.forget()
