"""A worker's signal state, Resque's table: the handlers only set flags and wake the main
loop; the loop logs what arrived and runs the hooks that go with it.

| signal | effect |
|---|---|
| QUIT | stop after the current job |
| TERM | like QUIT with GRACEFUL_TERM; else stop and end the job now (``shutdown!``) |
| INT | stop and end the job now |
| USR1 | end the current job now, keep working |
| USR2 / CONT | pause / resume reserving jobs |
| URG | look again now (``LOOK_AGAIN``): sent by the pool manager when something an idle
  worker waits on changed, and by the kernel when the manager dies |
"""

from __future__ import annotations

import logging
import select
import signal
import threading
from typing import Any

from resque_pool.errors import TermException
from resque_pool.unix.self_pipe import Waker
from resque_pool.worker.options import WorkerOptions

logger = logging.getLogger(__name__)

# Why the job child is to be killed: USR1 ends this job on purpose (it is not requeued);
# a shutdown ends it because the worker stops (it is, with RESQUE_REQUEUE_DIRTY_JOBS).
KILL_FOR_USR1 = "USR1"
KILL_FOR_SHUTDOWN = "shutdown"
# A job past its time limit (worker/limits.py): a JobTimeout failure, never requeued.
KILL_FOR_TIMEOUT = "timeout"

# "Look again": an idle worker blocks on Redis with no time-out under a pool manager, which
# sends this when something the worker waits on changed (pausing, the queue set, jobs
# another client pushed, pool/idle_watch.py); the kernel sends it too when the manager dies
# (unix/parent_death.py). SIGURG because its default action is to ignore it: a worker that
# has not installed its handler yet, or a process that is no worker, loses nothing.
LOOK_AGAIN = signal.SIGURG


class WorkerSignals:
    """What the signals asked of one worker, as the manager keeps its ``SignalQueue``.

    ``shutdown_requested``, ``paused`` and ``kill_child`` are the flags the loop reads;
    ``in_job`` is set by the loop around an in-process job (TERM_CHILD raises
    ``TermException`` into it); ``wait()`` sleeps until a signal arrives."""

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.shutdown_requested = False
        self.paused = False
        self.kill_child: str | None = None  # KILL_FOR_USR1 / KILL_FOR_SHUTDOWN
        self.in_job = False
        self.look_again = False  # LOOK_AGAIN arrived: an idle wait ends and the loop looks
        self._term_raised = False
        self._names: list[str] = []
        self._shutdown_hooks_ran = False
        self._pause_seen = False
        self._previous: dict[int, Any] = {}
        self._waker: Waker | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("Worker runs outside the main thread: signals are not handled")
            return
        self._waker = Waker()
        handlers = {
            signal.SIGTERM: self._on_term,
            signal.SIGINT: self._on_int,
            signal.SIGQUIT: self._on_quit,
            signal.SIGUSR1: self._on_usr1,
            signal.SIGUSR2: self._on_usr2,
            signal.SIGCONT: self._on_cont,
            signal.SIGCHLD: self._on_chld,
            LOOK_AGAIN: self._on_look_again,
        }
        for signum, handler in handlers.items():
            self._previous[signum] = signal.signal(signum, handler)
        # A worker forked by a pool starts with the manager's signals blocked (see
        # pool/spawn.py fork_child); one that arrived meanwhile is delivered here, to these
        # handlers.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        self.close()

    def close(self) -> None:
        """Drop the wake-up pipe (also in a job child, which must not hold the parent's)."""
        if self._waker is not None:
            self._waker.close()
            self._waker = None

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if a signal woke us early."""
        if self._waker is None:
            threading.Event().wait(seconds)
            return False
        return self._waker.wait(seconds)

    def wait_beside(self, fd: int, seconds: float) -> str:
        """Sleep up to ``seconds`` or until ``fd`` (a Redis socket) is readable or a
        signal arrives: ``"signal"``, ``"ready"`` or ``"tick"`` (the time passed)."""
        if self._waker is None:
            readable, _, _ = select.select([fd], [], [], max(seconds, 0))
            return "ready" if readable else "tick"
        readable = self._waker.wait_beside([fd], seconds)
        if self._waker.read_fd in readable:
            return "signal"
        return "ready" if fd in readable else "tick"

    def arrived(self) -> list[str]:
        """Names of the signals that arrived since the last call (for the loop to log:
        logging is not safe to re-enter from a handler)."""
        names, self._names = self._names, []
        return names

    def due_hooks(self) -> list[str]:
        """Ruby runs ``shutdown`` and ``before_pause``/``after_pause`` inside its signal
        handlers; here the loop runs the ones this returns as soon as it sees the change."""
        due = []
        if self.shutdown_requested and not self._shutdown_hooks_ran:
            self._shutdown_hooks_ran = True
            due.append("shutdown")
        if self.paused != self._pause_seen:
            self._pause_seen = self.paused
            due.append("before_pause" if self.paused else "after_pause")
        return due

    # -- handlers ------------------------------------------------------------------------

    def _noted(self, signum: int) -> None:
        self._names.append(signal.Signals(signum).name)
        if self._waker is not None:
            self._waker.wake()

    def _on_quit(self, signum: int, frame: object) -> None:
        self.shutdown_requested = True
        self._noted(signum)

    def _on_term(self, signum: int, frame: object) -> None:
        if self.options.graceful_term:
            self._on_quit(signum, frame)
        else:
            self._shutdown_now(signum)

    def _on_int(self, signum: int, frame: object) -> None:
        self._shutdown_now(signum)

    def _shutdown_now(self, signum: int) -> None:
        """Resque's ``shutdown!``: stop after this job and end the job now."""
        self.shutdown_requested = True
        self._noted(signum)
        if self.options.fork_per_job:
            self.kill_child = KILL_FOR_SHUTDOWN
        elif self.options.term_child and self.in_job and not self._term_raised:
            # In-process with TERM_CHILD the job itself receives TermException (once).
            self._term_raised = True
            raise TermException.for_stop()

    def _on_usr1(self, signum: int, frame: object) -> None:
        if self.options.fork_per_job:
            self.kill_child = KILL_FOR_USR1
        self._noted(signum)

    def _on_usr2(self, signum: int, frame: object) -> None:
        self.paused = True
        self._noted(signum)

    def _on_cont(self, signum: int, frame: object) -> None:
        self.paused = False
        self._noted(signum)

    def _on_look_again(self, signum: int, frame: object) -> None:
        # Not logged: the manager sends it routinely.
        self.look_again = True
        if self._waker is not None:
            self._waker.wake()

    def _on_chld(self, signum: int, frame: object) -> None:
        if self._waker is not None:
            self._waker.wake()
