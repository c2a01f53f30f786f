"""The forked job child: both its side (run the job, record a failure, ``os._exit``) and the
parent's handle on it (poll, kill, TERM-then-KILL, and the DirtyExit for a bad exit)."""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import time
from collections.abc import Callable
from typing import NoReturn

import redis as redis_lib

from resque_pool import failure_backends, hooks
from resque_pool.errors import DirtyExit, TermException
from resque_pool.logs import LogOnce
from resque_pool.resque import connection
from resque_pool.resque.in_flight import record_failed_job
from resque_pool.resque.jobs import Job
from resque_pool.resque.outages import describe, outage
from resque_pool.resque.outcomes import job_failed
from resque_pool.unix import parent_death
from resque_pool.unix.process import flush_output, fork_with_signals_blocked
from resque_pool.worker.limits import Deadline, install_child_deadline

logger = logging.getLogger(__name__)

# Worker-level signals mean nothing to a job child: QUIT/USR1/USR2 sent to the whole
# process group (a terminal's Ctrl-\) are the parent's business.
_IGNORED_IN_CHILD = (signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_DEFAULT_IN_CHILD = (signal.SIGINT, signal.SIGCONT, signal.SIGCHLD, signal.SIGTERM)


class OutcomeFlag:
    """One byte of memory a worker shares with its job children, in which a child says
    whether it wrote its job's outcome itself: the worker then writes no ``done_working``
    (that would count the job twice) and applies no loss policy (the job was dealt with)."""

    NONE, WRITTEN, DROPPED = 0, 1, 2

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, 1)  # anonymous and shared: the child's write is seen

    def clear(self) -> None:
        self._memory[0] = self.NONE

    def set(self, value: int) -> None:
        self._memory[0] = value

    @property
    def value(self) -> int:
        return self._memory[0]


def run_job_child(
    worker_id: str,
    job: Job,
    term_child: bool,
    close_inherited: Callable[[], None],
    deadline: Deadline | None = None,
    signal_mask: set[int] | None = None,
    outcome: OutcomeFlag | None = None,
    parent_pid: int | None = None,
) -> NoReturn:
    """Everything the child does; it never returns. Exit status 0 means the job ran and
    any failure was recorded here (``outcome`` says so); anything else makes the parent
    record a DirtyExit (or apply the loss policy, for a death by signal).

    ``signal_mask``: the mask to restore once the child's own handlers are in place (the
    parent forks with the worker's signals blocked, see ``fork_blocking_signals``).
    ``parent_pid``: the worker; the child dies with it (Linux, ``unix/parent_death.py``)."""
    status = 1
    try:
        if parent_pid is not None:
            parent_death.die_with_parent(parent_pid)
        _reset_signals(term_child)
        if deadline is not None:
            install_child_deadline(deadline, term_child)
        close_inherited()
        # New clients, and without the worker's bound on replies (a job may block on
        # Redis as long as it likes: hang detection watches the worker, not its child).
        connection.abandon_clients(socket_timeout=None)
        # The title "Processing <queue> since ..." is inherited: the parent set it before
        # forking and changes its own to "Forked ..." only afterwards.
        try:
            if signal_mask is not None:
                # A TERM that arrived meanwhile is delivered here: with TERM_CHILD it is the
                # job's TermException, recorded like any failure.
                signal.pthread_sigmask(signal.SIG_SETMASK, signal_mask)
            hooks.run("after_fork", job)
            job.perform()
        except BaseException as error:  # SystemExit from a job is a failure too, as in Ruby
            _record_failure(worker_id, job, error, outcome)
        status = 0
    except BaseException:
        logger.exception("Job child %s could not finish %s", os.getpid(), job.describe())
    finally:
        # os._exit skips atexit: a backend that sends from a thread (Sentry) sends now.
        failure_backends.flush()
        flush_output()
        os._exit(status)


# How often a job child tries again to write its job's failure while Redis refuses it.
_RETRY_EVERY = 1.0


def _record_failure(
    worker_id: str, job: Job, error: BaseException, outcome: OutcomeFlag | None
) -> None:
    """Write the job's failure (or, stopped with its worker, its requeue) with the removal
    of its in-flight record, waiting out an outage: the worker is blocked on this child
    meanwhile, so it takes no other job. A TERM or INT no longer interrupts the write; the
    worker's KILL after its TERM timeout still ends the child, leaving the record to the
    loss policy."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    job_failed(job, error)
    waiting = LogOnce(logger)
    while True:
        try:
            record_failed_job(worker_id, job, error)
        except redis_lib.RedisError as redis_error:
            if outage(redis_error) is None:
                logger.error(
                    "could not record the failure of %s (%s: %s), and waiting will not "
                    "help; dropped; its failure: %s: %s",
                    job.describe(2000),
                    type(redis_error).__name__,
                    redis_error,
                    type(error).__name__,
                    error,
                )
                if outcome is not None:
                    outcome.set(OutcomeFlag.DROPPED)
                return
            waiting.error(
                str(outage(redis_error)),
                "could not record the failure of %s: %s; trying again every %gs",
                job.describe(500),
                describe(redis_error),
                _RETRY_EVERY,
            )
            time.sleep(_RETRY_EVERY)
            continue
        waiting.clear("recorded the failure of %s after the outage", job.describe(500))
        if outcome is not None:
            outcome.set(OutcomeFlag.WRITTEN)
        return


# Signals whose worker handlers must never run in a fresh child: one arriving between the
# fork and _reset_signals would be swallowed by the parent's handler (a TERM sent to end
# the job would be lost, and the job killed as a DirtyExit after RESQUE_TERM_TIMEOUT).
BLOCKED_AROUND_FORK = {*_IGNORED_IN_CHILD, *_DEFAULT_IN_CHILD}


def fork_blocking_signals() -> tuple[int, set[int]]:
    """``os.fork()`` with the worker's signals blocked; the parent's mask is restored at
    once, the child restores it (returned) after installing its own handlers."""
    return fork_with_signals_blocked(BLOCKED_AROUND_FORK)


def _reset_signals(term_child: bool) -> None:
    for signum in _IGNORED_IN_CHILD:
        signal.signal(signum, signal.SIG_IGN)
    for signum in _DEFAULT_IN_CHILD:
        signal.signal(signum, signal.SIG_DFL)
    if term_child:
        signal.signal(signal.SIGTERM, _raise_term_once)


def _raise_term_once(signum: int, frame: object) -> None:
    # TERM_CHILD: the job sees TermException once, giving it a chance to clean up; later
    # TERMs are ignored and the parent's KILL after RESQUE_TERM_TIMEOUT is the backstop.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise TermException.for_stop()


class ChildProcess:
    """The parent's handle on one job child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None

    def poll(self) -> int | None:
        """The wait status once the child has exited (reaping it), else None."""
        if self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: nothing more can be learnt
                self.status = 0
            else:
                if pid:
                    self.status = status
        return self.status

    def wait(self, timeout: float, step: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(step)
        return True

    def send(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        logger.info("Killing child at %s", self.pid)
        self.send(signal.SIGKILL)

    def terminate(self, pre_shutdown_timeout: float, term_timeout: float) -> None:
        """Resque's ``new_kill_child``: wait, TERM, poll every 0.1 s, then KILL."""
        if self.wait(pre_shutdown_timeout):
            return
        logger.info("Sending TERM signal to child %s", self.pid)
        self.send(signal.SIGTERM)
        if not self.wait(term_timeout):
            logger.info("Sending KILL signal to child %s", self.pid)
            self.kill()


def dirty_exit_for(pid: int, status: int) -> DirtyExit | None:
    """The failure for a child that did not exit cleanly, worded like Ruby's
    ``Process::Status#to_s``; None for exit status 0."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"SIG{signum}"
        return DirtyExit(
            f"Child process received unhandled signal pid {pid} {name} (signal {signum})"
        )
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        return DirtyExit(f"Child process exited unexpectedly pid {pid} exit {code}")
    return None
