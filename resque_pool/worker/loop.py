"""One Resque worker: reserve jobs from a queue list and run each in a forked child.

The lifecycle, key writes and proclines follow Ruby Resque 3.0 (``lib/resque/worker.rb``;
see ``docs/wire-format.md`` and ``docs/worker.md``), except that taking a job is one atomic
step (``resque/reserve.py``) and a job lost with its process follows the loss policy
(``resque/in_flight.py``). Signal handlers only set flags and wake the main loop;
everything that talks to Redis or waits happens in the main loop. Running one reserved
job (fork or in process, its time limit, its outcome) is ``worker/perform.py``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

import redis as redis_lib

from resque_pool import failure_backends, hooks
from resque_pool.conf import settings
from resque_pool.logs import LogOnce, clear_job_context, set_context
from resque_pool.resque import packed, records
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.jobs import Job
from resque_pool.resque.outages import REDIS_DOWN, describe, outage
from resque_pool.resque.outcomes import done_working
from resque_pool.resque.pruning import cleanup_dead_worker, prune_dead_workers
from resque_pool.resque.queue_resolution import QueueList
from resque_pool.resque.reserve import PAUSED, Reservation, raw_key, reserve
from resque_pool.resque.worker_records import make_worker_id, register, unregister
from resque_pool.unix.parent_death import signal_on_parent_death
from resque_pool.worker.heartbeat import Heartbeat
from resque_pool.worker.job_child import ChildProcess
from resque_pool.worker.limits import Limits, Recycler
from resque_pool.worker.options import WorkerOptions
from resque_pool.worker.pending import PendingWrites
from resque_pool.worker.perform import JobRunner
from resque_pool.worker.pickup import TICK, TICKED, WakeUps
from resque_pool.worker.procline import display_class, set_procline
from resque_pool.worker.progress import Progress, bounded_redis_waits
from resque_pool.worker.signal_flags import LOOK_AGAIN, WorkerSignals

__all__ = ["Worker", "make_worker_id", "cleanup_dead_worker"]

logger = logging.getLogger(__name__)


class Worker:
    """``Worker(queues, interval=None, fork_per_job=None, manager_pid=None).work()``.

    ``queues`` is a list or a comma-separated string (``"critical,*,!file_*"``); ``None``
    for the others means the ``INTERVAL`` / ``FORK_PER_JOB`` environment variables, then
    the defaults (5.0 s, ``RESQUE_FORK_PER_JOB``). With ``manager_pid`` the worker exits
    after its current job once its parent process is no longer that pid. ``limits``
    (``worker.limits.Limits``) bounds each job's time and the worker's life; by default
    the settings' limits.
    """

    def __init__(
        self,
        queues: str | Iterable[str] | None,
        interval: float | None = None,
        fork_per_job: bool | None = None,
        manager_pid: int | None = None,
        limits: Limits | None = None,
        progress_fd: int | None = None,
    ) -> None:
        if not queues:
            queues = os.environ.get("QUEUES") or os.environ.get("QUEUE") or ""
        self.queue_list = QueueList(queues)
        self.options = WorkerOptions.from_environment(interval, fork_per_job)
        self.manager_pid = manager_pid
        self.limits = limits or Limits.resolve()
        self.recycler = Recycler(self.limits)
        # Hang detection: the manager's file this loop touches (worker/progress.py).
        self.progress = Progress(progress_fd)
        self._wakeups = WakeUps()
        self.recycled: str | None = None  # why the worker exits to be replaced
        self.signals = WorkerSignals(self.options)
        self._pid: int | None = None
        self._id: str | None = None
        self._registered = False
        self._redis_down = LogOnce(logger)
        self._was_working = False
        self._heartbeat: Heartbeat | None = None
        self._pending = PendingWrites(forget=self._forget_in_flight)
        # The per-job part: fork or in process, time limit, outcome (worker/perform.py).
        self.runner = JobRunner(
            self.options, self.limits, self.signals, self.progress, self._pending, self._on_poll
        )

    @property
    def id(self) -> str:
        # Fixed once work() starts: a job child must report its parent's id.
        return self._id or make_worker_id(os.getpid(), self.queue_list.patterns)

    def __str__(self) -> str:
        return self.id

    @property
    def shutdown_requested(self) -> bool:
        return self.signals.shutdown_requested

    @shutdown_requested.setter
    def shutdown_requested(self, value: bool) -> None:
        self.signals.shutdown_requested = value

    @property
    def child(self) -> ChildProcess | None:
        """The job child running now, if any."""
        return self.runner.child

    @property
    def paused(self) -> bool:
        return self.signals.paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self.signals.paused = value

    @property
    def queues(self) -> list[str]:
        """The queues to read now, in order (dynamic lists read the ``queues`` set)."""
        if not self.queue_list.dynamic:
            return self.queue_list.resolve()
        return self.queue_list.resolve(get_redis().smembers(key("queues")))

    # -- lifecycle -------------------------------------------------------------------

    def work(self) -> None:
        """Start, process jobs until shut down (or drained with interval 0), unregister.

        With interval 0 a Redis that does not answer ends the worker with the Redis
        error (the caller says so in one line); any other error is logged and raised."""
        error: BaseException | None = None
        try:
            self.startup()
            self._loop()
        except BaseException as exc:
            error = exc
            if outage(exc) is None:  # an outage is the caller's one line
                logger.exception("Worker %s stopped by an error", self._pid or os.getpid())
            raise
        finally:
            self._finish(error)

    def startup(self) -> None:
        self._pid = os.getpid()
        self._id = make_worker_id(self._pid, self.queue_list.patterns)
        set_context(worker=self._id)  # in JSON log lines, from now on
        set_procline("Starting")
        self.signals.install()
        if self.manager_pid is not None:
            # Noticed at once, not at the next tick: the kernel sends LOOK_AGAIN (catchable,
            # so a job in hand is finished) when the manager dies; _should_stop checks.
            signal_on_parent_death(LOOK_AGAIN, self.manager_pid)
        hang_timeout = settings.RESQUE_WORKER_HANG_TIMEOUT
        if self.progress.fd is not None and hang_timeout:
            bounded_redis_waits(hang_timeout)
        self.progress.beat()
        if not self._wait_for_redis(get_redis().ping):
            return  # asked to stop while waiting
        # A thread only when jobs run in the worker: a forking worker's loop comes round at
        # least once a second, and beats itself (worker/heartbeat.py).
        self._heartbeat = Heartbeat(
            self.id,
            settings.RESQUE_HEARTBEAT_INTERVAL,
            in_thread=not self.options.fork_per_job,
            manager_pid=self.manager_pid,
        )
        self._heartbeat.start()
        if not self._wait_for_redis(lambda: prune_dead_workers(self.id, self.queue_list)):
            return
        # Made here once: every job child inherits them instead of making its own.
        failure_backends.backends()
        hooks.run("before_first_fork", self)
        if not self._wait_for_redis(lambda: register(self.id)):
            return
        self._registered = True
        self._heartbeat.registered.set()
        logger.info("Worker %s registered", self.id)

    def _wait_for_redis(self, operation: Callable[[], object]) -> bool:
        """Run a start-up step, waiting out an outage (no answer, or writes refused) as
        the loop waits one out later: logged once, tried every interval. False if a signal
        asked the worker to stop meanwhile."""
        while True:
            try:
                operation()
            except redis_lib.RedisError as error:
                if outage(error) is None or self.options.interval == 0:
                    raise
                self._redis_unreachable(error)
            else:
                self._redis_down.clear("Redis answers")
                return True
            self._idle(self.options.interval)
            if self._should_stop():
                return False

    def _loop(self) -> None:
        while not self._should_stop():
            self._beat()
            self.signals.look_again = False  # this round looks at everything again
            wake_on: list[str] | None = None  # queues whose wake-up keys the idle wait watches
            wait = self.options.interval  # an outage is retried every interval
            try:
                self._pending.retry()
                worked = self.work_one_job()
                self._redis_answers()
                if worked:
                    self._was_working = True
                    self.recycled = self.recycler.job_done()
                    if self.recycled:
                        logger.info("Worker %s recycles: it %s", self.id, self.recycled)
                        return
                    continue
                # The per-job connection goes back to the pool before every idle wait, which
                # takes one from the pool: one connection per worker, working or not.
                packed.release()
                if self._was_working:  # the state changes to idle
                    self._was_working = False
                    self._run_hook("queue_empty")
                if self.options.interval == 0:
                    return
                wake_on = self._set_idle_procline()
                wait = self._idle_for()
            except redis_lib.RedisError as error:
                # Any Redis call of an iteration may meet an outage (no answer, or writes
                # refused, which a pending outcome keeps meeting until Redis takes it); the
                # worker waits it out rather than exiting, and takes no job meanwhile
                # (interval 0 means "drain and exit", so it exits).
                if outage(error) is None or self.options.interval == 0:
                    raise
                self._redis_unreachable(error)
            self._idle(wait, wake_on)

    def _redis_unreachable(self, error: Exception) -> None:
        # Once per kind of outage, whatever each failed call said.
        kind = outage(error) or "down"
        if kind == "down":
            self._redis_down.error(
                kind,
                "Redis is unreachable (%s); retrying every %ss until it answers",
                error,
                self.options.interval,
            )
        else:
            self._redis_down.error(
                kind,
                "%s; taking no job until it takes them again, trying every %ss",
                describe(error),
                self.options.interval,
            )

    def _redis_answers(self) -> None:
        if self._redis_down.active:
            # Redis may have come back empty (a restart without persistence, a failover):
            # registering again is idempotent and keeps the worker visible.
            register(self.id)
            self._redis_down.clear("Redis answers again; worker %s registered", self.id)

    def _finish(self, error: BaseException | None) -> None:
        self._run_state_hooks()  # a shutdown seen only by the loop's last check
        if self._heartbeat is not None:
            self._heartbeat.stop()
        try:
            if self._registered:
                self._pending.retry(final=True)
                self._unregister(error)
                hooks.run("worker_exit", self)
        finally:
            self.signals.restore()
            # A pool worker leaves with os._exit (no atexit): failures it reported (a
            # DirtyExit, a job run in process) are sent now.
            failure_backends.flush()
            if self._registered:
                logger.info("Worker %s exited", self.id)

    def _unregister(self, error: BaseException | None) -> None:
        try:
            unregister(self.id, error)
        except redis_lib.RedisError as redis_error:
            # Never mask the error that stopped the worker; a prune or the manager's
            # cleanup will unregister it later.
            logger.error("Worker %s could not unregister: %s", self.id, redis_error)
            if error is None:
                raise

    # -- one job ---------------------------------------------------------------------

    def work_one_job(self) -> bool:
        """Reserve and process one job; False when paused or every queue is empty."""
        # Cleared here, before anything is reserved, so that a TERM/INT/USR1 arriving
        # between the pop and the fork still kills the job child once it exists.
        self.signals.kill_child = None
        self._log_signals()
        if self.paused:
            return False
        queues = self.queues
        if not queues:
            return False
        reservation = reserve(self.id, queues)  # the pause-all-workers check is in there
        if reservation is None or reservation == PAUSED:
            return False
        self.process(reservation)
        return True

    def is_paused(self) -> bool:
        if self.paused:
            return True
        return records.pauses_workers(get_redis().get(key(records.PAUSE_ALL_WORKERS)))

    def process(self, reservation: Reservation) -> None:
        """Run a reserved job to its end; whatever its bytes, it ends as done, as a failure
        entry, or (its process died, requeueing on) back on its queue."""
        started = time.monotonic()  # the job's duration, for the metrics view's histogram
        job = Job.from_raw(reservation.queue, reservation.raw)
        set_procline(f"Processing {job.queue} since {int(time.time())} [{display_class(job)}]")
        # JSON log lines of the worker, its job child and the job's own code say which job.
        wrapped = records.wrapped_id(job.payload)
        set_context(queue=job.queue, job_class=records.job_class(job.payload))
        if wrapped is not None:
            set_context(**{wrapped[0]: wrapped[1]})
        try:
            if logger.isEnabledFor(logging.INFO):
                logger.info("got: %s", job.describe())
            if self.runner.run(self.id, job) == "done":
                # The job's duration goes into done_working's own transaction (the
                # metrics view's histogram), not a write of its own.
                duration = None
                if settings.RESQUE_METRICS_JOB_DURATIONS:
                    duration = (job.class_name, time.monotonic() - started)
                placeholder = not reservation.spliced
                self._pending.record("done_working", done_working, self.id, placeholder, duration)
        finally:
            clear_job_context()

    def _forget_in_flight(self) -> None:
        """Remove this worker's in-flight record whatever it holds (a job whose outcome
        Redis would not take for good; logged with the job where that happened)."""
        get_redis().delete(key("worker", self.id), raw_key(self.id))

    # -- idling ----------------------------------------------------------------------

    def _set_idle_procline(self) -> list[str] | None:
        """Set the idle title; the queues to wait for wake-ups on (None when paused: a
        paused worker must not take the tokens its peers would wake on)."""
        if self.is_paused():
            set_procline("Paused")
            return None
        queues = self.queues
        set_procline(f"Waiting for {','.join(queues)}")
        return queues

    def _idle(self, seconds: float | None, wake_on: list[str] | None = None) -> None:
        """Wait ``seconds`` (None: until something happens, under a pool manager), ending
        early for a signal or ``LOOK_AGAIN``; with ``wake_on``, blocked on those queues'
        wake-up keys (``worker/pickup.py``), ending as soon as a job is pushed to one of
        them. Progress and the manager are looked at every ``TICK``, locally."""
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            while not self._should_stop():
                self._log_signals()
                self._beat()
                if self.signals.look_again:
                    return
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                if wake_on is not None and (wake_on or self._watches_queue_set()):
                    try:
                        if self._watches_queue_set() and self.queues != wake_on:
                            return  # a queue created meanwhile counts now
                        if not wake_on:
                            self.signals.wait(TICK if remaining is None else min(remaining, TICK))
                            continue
                        outcome = self._wakeups.wait(wake_on, remaining, self.signals)
                    except REDIS_DOWN:
                        return  # the next reservation meets the outage and waits it out
                    if outcome != TICKED:
                        return
                elif self.signals.wait(TICK if remaining is None else min(remaining, TICK)):
                    return
        finally:
            self._wakeups.cancel()

    def _watches_queue_set(self) -> bool:
        """A worker alone reading ``*`` or a glob looks at the queue set every ``TICK`` while
        it waits; a pool's worker is told by its manager instead (pool/idle_watch.py)."""
        return self.manager_pid is None and self.queue_list.dynamic

    def _idle_for(self) -> float | None:
        """How long an idle wait lasts: until woken under a manager (it polls for what
        other clients do, once per pool), else the interval, as Resque polls."""
        return None if self.manager_pid is not None else self.options.interval

    def _should_stop(self) -> bool:
        if not self.shutdown_requested and self._manager_gone():
            logger.warning("Manager %s is gone; exiting after the current job", self.manager_pid)
            self.shutdown_requested = True
        return self.shutdown_requested

    def _manager_gone(self) -> bool:
        return self.manager_pid is not None and os.getppid() != self.manager_pid

    # -- signals and hooks -------------------------------------------------------------

    def _beat(self) -> None:
        """The loop came round: progress for the manager, and the heartbeat when it is due
        (a worker that forks per job has no heartbeat thread)."""
        self.progress.beat()
        if self._heartbeat is not None:
            self._heartbeat.tick()

    def _on_poll(self) -> None:
        """While the job child runs: signals, state hooks, and the heartbeat when due."""
        self._log_signals()
        if self._heartbeat is not None:
            self._heartbeat.tick()

    def _log_signals(self) -> None:
        # Logged here rather than in the handlers: logging is not safe to re-enter.
        for name in self.signals.arrived():
            logger.info("Worker %s received %s", self._pid, name)
        self._run_state_hooks()

    def _run_state_hooks(self) -> None:
        for name in self.signals.due_hooks():
            self._run_hook(name)

    def _run_hook(self, name: str) -> None:
        try:
            hooks.run(name, self)
        except Exception:
            logger.exception("Worker %s: a %s hook failed", self._pid, name)
