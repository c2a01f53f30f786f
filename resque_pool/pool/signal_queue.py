"""The manager's signal plumbing, gunicorn-arbiter style.

Handlers only enqueue the signal (at most five waiting, as resque-pool and gunicorn do)
and the C-level wakeup fd writes a byte to a pipe, which the main loop sleeps on with
``select``. Everything else happens on the main loop, never inside a handler.
"""

from __future__ import annotations

import collections
import logging
import signal
from collections.abc import Iterable

from resque_pool.unix.self_pipe import Waker

# resque-pool also queues signal 29 (SIGINFO on BSD/macOS, SIGIO on Linux) for its siginfo
# hooks; queueing it here keeps its default action (terminate) from killing the manager.
SIGNAL_29 = getattr(signal, "SIGINFO", None) or signal.SIGIO
QUEUED = (
    signal.SIGQUIT,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
    signal.SIGHUP,
    signal.SIGWINCH,
    SIGNAL_29,
)
MAX_QUEUED = 5
# Reopening log files has a signal of its own, one resque-pool leaves free: HUP deploys
# (a new generation of the application), and a nightly logrotate must not redeploy.
REOPEN_LOGS = signal.SIGALRM

logger = logging.getLogger(__name__)


class SignalQueue:
    def __init__(self) -> None:
        self.pending: collections.deque[int] = collections.deque()
        self.dropped: list[int] = []
        self.previous: dict[int, object] = {}
        # The worker's self-pipe; here Python's C-level wakeup fd writes to it.
        self.waker = Waker()

    def install(self) -> None:
        self.previous = {signum: signal.getsignal(signum) for signum in self.handled}
        signal.set_wakeup_fd(self.waker.write_fd, warn_on_full_buffer=False)
        for signum in QUEUED:
            signal.signal(signum, self._enqueue)
        # CHLD only has to wake the loop (the wakeup fd does that); reaping is the loop's job.
        signal.signal(signal.SIGCHLD, self._wake_only)

    def uninstall(self) -> None:
        """Put back the handlers found at install()."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(-1)

    def ignore_from_now_on(self) -> None:
        """For the final shutdown: ignore the queued signals instead of putting back their
        default actions, so that a burst of QUIT or TERM still arriving cannot kill the
        manager (QUIT would dump core) before it removed its pidfile."""
        for signum in QUEUED:
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)

    @property
    def handled(self) -> tuple[int, ...]:
        return (*QUEUED, signal.SIGCHLD)

    def _enqueue(self, signum: int, frame: object) -> None:
        if len(self.pending) < MAX_QUEUED:
            self.pending.append(signum)
        else:
            self.dropped.append(signum)  # logged by the loop, not here

    def _wake_only(self, signum: int, frame: object) -> None:
        pass

    def pop(self) -> int | None:
        return self.pending.popleft() if self.pending else None

    def drain(self) -> list[int]:
        """Every signal waiting, oldest first, leaving the queue empty (while the manager
        waits for its workers to exit, only INT and TERM still mean something)."""
        waiting = list(self.pending)
        self.pending.clear()
        return waiting

    def log_dropped(self) -> None:
        """Log, from the loop, the signals the handler had to drop (never log in a handler)."""
        dropped, self.dropped = self.dropped, []
        for signum in dropped:
            logger.warning("ignoring SIG%s: signal queue is full", name(signum))

    def sleep(self, timeout: float, beside: Iterable[int] = ()) -> None:
        """Block until a signal arrives, one of ``beside`` (a socket) is readable, or
        ``timeout`` seconds pass."""
        if not self.pending:
            self.waker.wait_beside(beside, timeout)

    @property
    def fds(self) -> tuple[int, int]:
        """The pipe's ends, for a forked worker to close."""
        return self.waker.read_fd, self.waker.write_fd

    def close(self) -> None:
        self.waker.close()


def name(signum: int) -> str:
    return signal.Signals(signum).name.removeprefix("SIG")
