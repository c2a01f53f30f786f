"""A worker's signal handling, Resque's table: the handlers only set flags and wake the
main loop; the loop logs what arrived and runs the hooks that go with it.

| signal | effect |
|---|---|
| QUIT | stop after the current job |
| TERM | like QUIT with GRACEFUL_TERM; else stop and end the job now (``shutdown!``) |
| INT | stop and end the job now |
| USR1 | end the current job now, keep working |
| USR2 / CONT | pause / resume reserving jobs |
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from resque_pool import hooks
from resque_pool.errors import TermException
from resque_pool.unix.wakeup import Waker

logger = logging.getLogger(__name__)


class WorkerSignals:
    """Mixed into ``Worker``, which provides ``options``, ``shutdown_requested``, ``paused``,
    ``_pid`` and ``_in_job``; it reads ``_kill_child_requested`` and sleeps on ``_waker``."""

    def _init_signal_state(self) -> None:
        self._kill_child_requested = False
        self._term_raised = False
        self._signal_names: list[str] = []
        self._shutdown_hooks_ran = False
        self._pause_seen = False
        self._previous_handlers: dict[int, Any] = {}
        self._waker: Waker | None = None

    def _install_signal_handlers(self) -> None:
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
        }
        for signum, handler in handlers.items():
            self._previous_handlers[signum] = signal.signal(signum, handler)

    def _restore_signal_handlers(self) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()
        if self._waker is not None:
            self._waker.close()
            self._waker = None

    def _noted(self, signum: int) -> None:
        self._signal_names.append(signal.Signals(signum).name)
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
            self._kill_child_requested = True
        elif self.options.term_child and self._in_job and not self._term_raised:
            # In-process with TERM_CHILD the job itself receives TermException (once).
            self._term_raised = True
            raise TermException("SIGTERM")

    def _on_usr1(self, signum: int, frame: object) -> None:
        self._kill_child_requested = self.options.fork_per_job
        self._noted(signum)

    def _on_usr2(self, signum: int, frame: object) -> None:
        self.paused = True
        self._noted(signum)

    def _on_cont(self, signum: int, frame: object) -> None:
        self.paused = False
        self._noted(signum)

    def _on_chld(self, signum: int, frame: object) -> None:
        if self._waker is not None:
            self._waker.wake()

    def _log_signals(self) -> None:
        # Logged here rather than in the handlers: logging is not safe to re-enter.
        while self._signal_names:
            name = self._signal_names.pop(0)
            logger.info("Worker %s received %s", self._pid, name)
        self._run_state_hooks()

    def _run_state_hooks(self) -> None:
        """Ruby runs ``shutdown`` and ``before_pause``/``after_pause`` inside its signal
        handlers; here the main loop runs them as soon as it sees the change."""
        if self.shutdown_requested and not self._shutdown_hooks_ran:
            self._shutdown_hooks_ran = True
            self._run_hook("shutdown")
        if self.paused != self._pause_seen:
            self._pause_seen = self.paused
            self._run_hook("before_pause" if self.paused else "after_pause")

    def _run_hook(self, name: str) -> None:
        try:
            hooks.run(name, self)
        except Exception:
            logger.exception("Worker %s: a %s hook failed", self._pid, name)
