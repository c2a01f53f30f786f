"""One Resque worker: reserve jobs from a queue list and run each in a forked child.

The lifecycle, key writes and proclines follow Ruby Resque 3.0 (``lib/resque/worker.rb``);
see ``docs/wire-format.md`` and ``docs/worker.md``.
Signal handlers only set flags and wake the main loop through a pipe; everything that
talks to Redis or waits happens in the main loop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable

import redis as redis_lib
from django import db

from resque_pool import hooks
from resque_pool.conf import settings
from resque_pool.errors import JobError
from resque_pool.logs import LogOnce
from resque_pool.resque import records
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.jobs import Job
from resque_pool.resque.outcomes import done_working, report_dirty_exit, report_failed_job
from resque_pool.resque.pruning import cleanup_dead_worker, prune_dead_workers
from resque_pool.resque.queue_resolution import QueueList
from resque_pool.resque.workers import (
    make_worker_id,
    record_tolerantly,
    register,
    unregister,
    working_on,
)
from resque_pool.worker.heartbeat import Heartbeat
from resque_pool.worker.job_child import ChildProcess, dirty_exit_for, run_job_child
from resque_pool.worker.options import WorkerOptions
from resque_pool.worker.procline import display_class, set_procline
from resque_pool.worker.signals import WorkerSignals

__all__ = ["Worker", "make_worker_id", "cleanup_dead_worker"]

logger = logging.getLogger(__name__)

# Longest stretch the worker sleeps without checking whether its manager is still there.
_MANAGER_CHECK = 1.0
# How often the parent looks at its job child when no signal wakes it.
_CHILD_POLL = 0.5


class Worker(WorkerSignals):
    """``Worker(queues, interval=None, fork_per_job=None, manager_pid=None).work()``.

    ``queues`` is a list or a comma-separated string (``"critical,*,!file_*"``); ``None``
    for the others means the ``INTERVAL`` / ``FORK_PER_JOB`` environment variables, then
    the defaults (5.0 s, ``RESQUE_FORK_PER_JOB``). With ``manager_pid`` the worker exits
    after its current job once its parent process is no longer that pid.
    """

    def __init__(
        self,
        queues: str | Iterable[str] | None,
        interval: float | None = None,
        fork_per_job: bool | None = None,
        manager_pid: int | None = None,
    ) -> None:
        if not queues:
            queues = os.environ.get("QUEUES") or os.environ.get("QUEUE") or ""
        self.queue_list = QueueList(queues)
        self.options = WorkerOptions.from_environment(interval, fork_per_job)
        self.manager_pid = manager_pid
        self.shutdown_requested = False
        self.paused = False
        self.child: ChildProcess | None = None
        self._pid: int | None = None
        self._id: str | None = None
        self._init_signal_state()
        self._in_job = False
        self._redis_down = LogOnce(logger)
        self._was_working = False
        self._heartbeat: Heartbeat | None = None

    @property
    def id(self) -> str:
        # Fixed once work() starts: a job child must report its parent's id.
        return self._id or make_worker_id(os.getpid(), self.queue_list.patterns)

    def __str__(self) -> str:
        return self.id

    @property
    def queues(self) -> list[str]:
        """The queues to read now, in order (dynamic lists read the ``queues`` set)."""
        if not self.queue_list.dynamic:
            return self.queue_list.resolve()
        return self.queue_list.resolve(get_redis().smembers(key("queues")))

    # -- lifecycle -------------------------------------------------------------------

    def work(self) -> None:
        """Start, process jobs until shut down (or drained with interval 0), unregister."""
        error: BaseException | None = None
        try:
            self.startup()
            self._loop()
        except BaseException as exc:
            error = exc
            logger.exception("Worker %s stopped by an error", self._pid or os.getpid())
            raise
        finally:
            self._finish(error)

    def startup(self) -> None:
        self._pid = os.getpid()
        self._id = make_worker_id(self._pid, self.queue_list.patterns)
        set_procline("Starting")
        self._install_signal_handlers()
        self._heartbeat = Heartbeat(self.id, settings.RESQUE_HEARTBEAT_INTERVAL)
        self._heartbeat.start()
        prune_dead_workers(self.id, self.queue_list)
        hooks.run("before_first_fork", self)
        register(self.id)
        logger.info("Worker %s registered", self.id)

    def _loop(self) -> None:
        while not self._should_stop():
            try:
                worked = self.work_one_job()
                self._redis_answers()
                if worked:
                    self._was_working = True
                    continue
                if self._was_working:  # the state changes to idle
                    self._was_working = False
                    self._run_hook("queue_empty")
                if self.options.interval == 0:
                    return
                self._set_idle_procline()
            except (redis_lib.ConnectionError, redis_lib.TimeoutError) as error:
                # Any Redis call of an iteration may meet an outage; the worker waits it out
                # rather than exiting (interval 0 means "drain and exit", so it exits).
                if self.options.interval == 0:
                    raise
                self._redis_unreachable(error)
            self._idle(self.options.interval)

    def _redis_unreachable(self, error: Exception) -> None:
        # Once for the whole outage, whatever each failed call said.
        self._redis_down.error(
            "down",
            "Redis is unreachable (%s); retrying every %ss until it answers",
            error,
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
            if self._pid is not None:
                self._unregister(error)
                hooks.run("worker_exit", self)
        finally:
            self._restore_signal_handlers()
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
        self._kill_child_requested = False
        self._log_signals()
        if self.is_paused():
            return False
        job = self.reserve()
        if job is None:
            return False
        self.process(job)
        return True

    def is_paused(self) -> bool:
        if self.paused:
            return True
        return records.pauses_workers(get_redis().get(key(records.PAUSE_ALL_WORKERS)))

    def reserve(self) -> Job | None:
        for queue in self.queues:
            job = Job.reserve(queue)
            if job is not None:
                return job
        return None

    def process(self, job: Job) -> None:
        # The job is in hand once popped: a Redis outage while recording it must not lose
        # it, so bookkeeping errors are logged and the job runs all the same.
        record_tolerantly("working_on", working_on, self.id, job)
        set_procline(f"Processing {job.queue} since {int(time.time())} [{display_class(job)}]")
        logger.info("got: %s", job.describe())
        try:
            # Garbage is recorded here, before any child is forked for it.
            job.validate()
        except JobError as error:
            record_tolerantly("the failure", report_failed_job, self.id, job, error)
        else:
            if self.options.fork_per_job:
                self._perform_with_fork(job)
            else:
                self._perform_in_process(job)
        record_tolerantly("done_working", done_working, self.id)

    def _perform_in_process(self, job: Job) -> None:
        db.close_old_connections()
        self._in_job = True
        try:
            job.perform()
        except (Exception, SystemExit) as error:
            # A job's sys.exit() is the job's failure, not the worker's (Ruby rescues
            # Object here; the forked child does the same).
            self._in_job = False
            record_tolerantly("the failure", report_failed_job, self.id, job, error)
        finally:
            self._in_job = False
            db.close_old_connections()

    def _perform_with_fork(self, job: Job) -> None:
        try:
            hooks.run("before_fork", job)
        except Exception as error:
            record_tolerantly("the failure", report_failed_job, self.id, job, error)
            return
        # Database sockets must never be shared with a child: close them here, in the
        # parent, so the child opens its own (closing them in the child could send a
        # protocol-level goodbye on the parent's connection).
        db.connections.close_all()
        pid = os.fork()
        if pid == 0:
            run_job_child(self.id, job, self.options.term_child, self._close_inherited)
        self.child = ChildProcess(pid)
        set_procline(f"Forked {pid} at {int(time.time())}")
        try:
            status = self._wait_for_child(self.child)
        finally:
            self.child = None
        dirty = dirty_exit_for(pid, status)
        if dirty is not None:
            record_tolerantly("the dirty exit", report_dirty_exit, self.id, job, dirty)

    def _wait_for_child(self, child: ChildProcess) -> int:
        while True:
            status = child.poll()
            if status is not None:
                return status
            if self._kill_child_requested:
                self._kill_child_requested = False
                self._kill_child(child)
                continue
            self._log_signals()
            self._wait(_CHILD_POLL)

    def _kill_child(self, child: ChildProcess) -> None:
        if self.options.term_child:
            child.terminate(self.options.pre_shutdown_timeout, self.options.term_timeout)
        else:
            child.kill()

    def _close_inherited(self) -> None:
        if self._waker is not None:
            self._waker.close()

    # -- idling ----------------------------------------------------------------------

    def _set_idle_procline(self) -> None:
        if self.is_paused():
            set_procline("Paused")
        else:
            set_procline(f"Waiting for {','.join(self.queues)}")

    def _idle(self, seconds: float) -> None:
        """Sleep, waking early for a signal and checking on the manager every second."""
        deadline = time.monotonic() + seconds
        while not self._should_stop():
            self._log_signals()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._wait(min(remaining, _MANAGER_CHECK)):
                return

    def _wait(self, seconds: float) -> bool:
        if self._waker is None:
            time.sleep(seconds)
            return False
        return self._waker.wait(seconds)

    def _should_stop(self) -> bool:
        if not self.shutdown_requested and self._manager_gone():
            logger.warning("Manager %s is gone; exiting after the current job", self.manager_pid)
            self.shutdown_requested = True
        return self.shutdown_requested

    def _manager_gone(self) -> bool:
        return self.manager_pid is not None and os.getppid() != self.manager_pid
