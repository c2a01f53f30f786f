"""Redis clean-up after the manager's workers die: a reaped worker's records and its
in-flight job at once (retried through an outage), and the periodic prune of workers
that died anywhere. The table of live processes is ``processes.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

import redis as redis_lib

from resque_pool.conf import settings
from resque_pool.logs import LogOnce
from resque_pool.pool.processes import WorkerProcess
from resque_pool.resque.outages import describe, outage
from resque_pool.resque.pruning import cleanup_dead_worker, prune_dead_workers
from resque_pool.resque.queue_lists import split_queues
from resque_pool.resque.queue_resolution import QueueList

logger = logging.getLogger(__name__)


def settle_dead_worker(proc: WorkerProcess, killed: bool, own_group: bool) -> bool:
    """The manager's side of a worker that died: kill the job child it left (``killed``
    and ``own_group``), then ``resque/pruning.py``'s ``cleanup_dead_worker`` for its
    records. Unregister a reaped worker and apply the loss policy to its in-flight job now,
    instead of leaving it to a prune minutes later (nothing to do after a clean exit).
    False if Redis could not be reached: the caller retries (``DeadWorkerCleanups``)."""
    if killed and own_group:
        # The worker led its own process group: a job child it left behind is killed so
        # that a job recorded as DirtyExit (or requeued) does not also go on running.
        # The group id cannot have been reused while any member is alive.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    try:
        if cleanup_dead_worker(proc.id, requeue=bool(settings.RESQUE_REQUEUE_DIRTY_JOBS)):
            logger.warning("cleaned up dead worker %s in Redis", proc.id)
    except redis_lib.RedisError as error:
        if outage(error) is None:
            logger.exception("could not clean up worker %s", proc.id)
            return True
        # No answer, or writes refused: the in-flight record stays until this is retried.
        logger.error("could not clean up worker %s yet (%s); retrying", proc.id, describe(error))
        return False
    except Exception:  # noqa: BLE001 (nothing about one dead worker may stop the manager)
        logger.exception("could not clean up worker %s", proc.id)
    return True


class DeadWorkerCleanups:
    """Clean-ups of dead workers that met a Redis outage, retried until they succeed: a
    worker killed while Redis was down must not stay registered with its job once Redis
    is back."""

    def __init__(self, retry_every: float = 1.0) -> None:
        self.retry_every = retry_every
        self.pending: list[WorkerProcess] = []
        self.next_retry = 0.0

    def add(self, proc: WorkerProcess, killed: bool, own_group: bool) -> None:
        if not settle_dead_worker(proc, killed, own_group):
            self.pending.append(proc)
            self.next_retry = time.monotonic() + self.retry_every

    def tick(self) -> None:
        if not self.pending or time.monotonic() < self.next_retry:
            return
        self.next_retry = time.monotonic() + self.retry_every
        while self.pending:
            try:
                cleanup_dead_worker(self.pending[0].id)
            except redis_lib.RedisError as error:
                if outage(error) is not None:
                    return  # still down: logged once when the clean-up was first refused
                logger.exception("could not clean up worker %s", self.pending[0].id)
            except Exception:  # noqa: BLE001
                logger.exception("could not clean up worker %s", self.pending[0].id)
            proc = self.pending.pop(0)
            logger.warning("cleaned up dead worker %s in Redis after the outage", proc.id)


class PeriodicPrune:
    """The manager prunes dead workers every ``RESQUE_HEARTBEAT_INTERVAL`` seconds, under
    Resque's prune lock (so one process in the whole cluster does it per interval): workers
    on any host whose heartbeat expired, and workers on this host reading one of our queue
    lists whose process is gone. Ruby's workers only prune when one starts."""

    def __init__(self, pool_id: str) -> None:
        self.pool_id = pool_id
        self.next_prune = time.monotonic() + self.period()
        self.failing = LogOnce(logger)

    @staticmethod
    def period() -> float:
        return max(float(settings.RESQUE_HEARTBEAT_INTERVAL), 1.0)

    def tick(self, queue_lists: list[str]) -> None:
        if time.monotonic() < self.next_prune:
            return
        self.next_prune = time.monotonic() + self.period()
        try:
            prune_dead_workers(self.pool_id, [QueueList(split_queues(q)) for q in queue_lists])
        except Exception as error:  # noqa: BLE001 (Redis down must not stop the pool)
            self.failing.error(str(error), "could not prune dead workers: %s", error)
            return
        self.failing.clear()
