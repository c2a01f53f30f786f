"""Running one reserved job to its outcome: checked, then performed in a forked job child
or in the worker's own process, within its time limit; what happened is recorded as a
failure entry, a ``DirtyExit`` or (its process died) the loss policy's decision.

The reserve loop around it (waiting, signals, shutdown) is ``worker/loop.py``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from resque_pool import hooks
from resque_pool.errors import DirtyExit, JobError, JobTimeout, MalformedPayload
from resque_pool.resque.in_flight import job_lost, record_failed_job
from resque_pool.resque.jobs import Job
from resque_pool.resque.outcomes import job_failed, record_failure
from resque_pool.resque.reserve import read_in_flight
from resque_pool.unix import parent_death
from resque_pool.worker import database
from resque_pool.worker.job_child import (
    ChildProcess,
    OutcomeFlag,
    dirty_exit_for,
    fork_blocking_signals,
    run_job_child,
)
from resque_pool.worker.limits import Deadline, Limits, alarm
from resque_pool.worker.options import WorkerOptions
from resque_pool.worker.pending import PendingWrites
from resque_pool.worker.procline import set_procline
from resque_pool.worker.progress import Progress
from resque_pool.worker.signal_flags import KILL_FOR_TIMEOUT, KILL_FOR_USR1, WorkerSignals

logger = logging.getLogger(__name__)

# How often the parent looks at its job child when no signal wakes it.
_CHILD_POLL = 0.5
# What an in-process job without a time limit tells hang detection: it may take any time.
_FOREVER = 10 * 365 * 86400.0


class JobRunner:
    """One worker's way of running a job. ``run()`` returns ``"done"`` (the worker writes
    ``done_working``) or ``"settled"`` (the job's outcome, with the removal of its in-flight
    record, is written or waits in ``pending`` for Redis to take it: a failure, a retry, a
    requeue; no ``done_working`` must follow). ``on_poll`` runs while the parent waits for
    its job child (the worker logs signals and runs its state hooks there)."""

    def __init__(
        self,
        options: WorkerOptions,
        limits: Limits,
        signals: WorkerSignals,
        progress: Progress,
        pending: PendingWrites,
        on_poll: Callable[[], None],
    ) -> None:
        self.options = options
        self.limits = limits
        self.signals = signals
        self.progress = progress
        self.pending = pending
        self.on_poll = on_poll
        self.child: ChildProcess | None = None
        self._outcome: OutcomeFlag | None = None  # made by the worker, at its first fork

    def run(self, worker_id: str, job: Job) -> str:
        try:
            # Garbage is recorded here, before any child is forked for it.
            job.validate()
        except Exception as error:  # noqa: BLE001 (no payload may stop the worker)
            if not isinstance(error, JobError):
                error = MalformedPayload(
                    f"payload cannot be checked ({type(error).__name__}: {error})"[:500]
                )
            return self._failed(worker_id, job, error)
        if self.options.fork_per_job:
            return self._perform_with_fork(worker_id, job)
        return self._perform_in_process(worker_id, job)

    def _failed(self, worker_id: str, job: Job, error: BaseException) -> str:
        """A job that raised in this process: its failure (or, stopped with the worker,
        its requeue), now or once Redis takes it."""
        job_failed(job, error)
        self.pending.record("the failure", record_failed_job, worker_id, job, error)
        return "settled"

    def _perform_in_process(self, worker_id: str, job: Job) -> str:
        database.close_old()
        self.signals.in_job = True
        try:
            timeout = self.limits.timeout_for(job)
            # The job is the main loop now: no beats until it returns (without a time
            # limit, no hang detection during it).
            self.progress.busy(timeout + self.options.term_timeout if timeout else _FOREVER)
            if timeout:
                with alarm(timeout):
                    job.perform()
            else:
                job.perform()
        except (Exception, SystemExit) as error:
            # A job's sys.exit() is the job's failure, not the worker's (Ruby rescues
            # Object here; the forked child does the same).
            self.signals.in_job = False
            return self._failed(worker_id, job, error)
        finally:
            self.signals.in_job = False
            database.close_old()
        return "done"

    def _perform_with_fork(self, worker_id: str, job: Job) -> str:
        try:
            hooks.run("before_fork", job)
        except Exception as error:
            return self._failed(worker_id, job, error)
        # Database sockets must never be shared with a child: close them here, in the
        # parent, so the child opens its own (closing them in the child could send a
        # protocol-level goodbye on the parent's connection).
        database.close_all()
        deadline = Deadline.start(self.limits.timeout_for(job))
        outcome = self._outcome_flag()
        outcome.clear()
        parent_pid = os.getpid()
        pid, mask = fork_blocking_signals()
        if pid == 0:
            run_job_child(
                worker_id,
                job,
                self.options.term_child,
                self.signals.close,
                deadline,
                mask,
                outcome,
                parent_pid,
            )
        self.child = ChildProcess(pid)
        set_procline(f"Forked {pid} at {int(time.time())}")
        killed_for: str | None = None
        try:
            status, killed_for = self._wait_for_child(self.child, deadline)
        finally:
            self.child = None
        if outcome.value == OutcomeFlag.WRITTEN:
            return "settled"  # the child wrote the failure (or requeue) itself
        if outcome.value == OutcomeFlag.DROPPED:
            self.pending.forget()  # Redis would not take it for good: logged by the child
            return "settled"
        dirty = dirty_exit_for(pid, status)
        if dirty is None:
            return "done"
        if killed_for == KILL_FOR_TIMEOUT and deadline is not None:
            # Ended at its limit: a failure (never requeued).
            return self._failed(worker_id, job, JobTimeout.after(deadline.seconds))
        if os.WIFSIGNALED(status) and killed_for != KILL_FOR_USR1:
            # The job died with its process (SIGKILL, the OOM killer, a shutdown): the
            # loss policy decides. USR1 ends a job on purpose; it is never requeued.
            self.pending.record("the lost job", _job_lost, worker_id, job, dirty)
            return "settled"
        job_failed(job, dirty)
        self.pending.record("the dirty exit", record_failure, worker_id, job, dirty, counted=False)
        return "settled"

    def _outcome_flag(self) -> OutcomeFlag:
        # Made in the worker itself, not inherited from the manager: every worker has its
        # own shared byte with its children.
        if self._outcome is None:
            self._outcome = OutcomeFlag()
            parent_death.prepare()
        return self._outcome

    def _wait_for_child(
        self, child: ChildProcess, deadline: Deadline | None = None
    ) -> tuple[int, str | None]:
        killed_for: str | None = None
        while True:
            status = child.poll()
            if status is not None:
                return status, killed_for
            if self.signals.kill_child is not None:
                killed_for, self.signals.kill_child = self.signals.kill_child, None
                self._kill_child(child)
                continue
            self.progress.beat()
            if deadline is not None and killed_for is None and deadline.passed():
                logger.warning("Job child %s ran past %gs; ending it", child.pid, deadline.seconds)
                killed_for = KILL_FOR_TIMEOUT
                self.progress.busy(self.options.term_timeout + 1)
                child.terminate(0, self.options.term_timeout)
                continue
            self.on_poll()
            wait = _CHILD_POLL if deadline is None else min(_CHILD_POLL, deadline.remaining())
            self.signals.wait(max(wait, 0.01))

    def _kill_child(self, child: ChildProcess) -> None:
        if self.options.term_child:
            self.progress.busy(self.options.pre_shutdown_timeout + self.options.term_timeout + 1)
            child.terminate(self.options.pre_shutdown_timeout, self.options.term_timeout)
        else:
            child.kill()


def _job_lost(worker_id: str, job: Job, dirty: DirtyExit) -> str:
    """The loss policy for the job whose child died; its failure counts as processed, in
    place of the ``done_working`` the worker does not write."""
    in_flight = read_in_flight(worker_id)
    if in_flight is None:
        # Redis lost the record (it restarted empty), or a prune dealt with the job while
        # this worker looked dead: writing a failure now could be a second outcome.
        logger.warning("%s: %s; its in-flight record is gone", job.describe(500), dirty)
        return "gone"
    return job_lost(worker_id, in_flight, dirty, processed=True)
