"""How an idle worker waits: one ``BLPOP`` on the wake-up keys of its queues
(``resque/wakeup.py``), kept pending while the worker selects on its socket beside its
signal pipe, so that it takes a job pushed through ``enqueue()`` within milliseconds and
answers a signal at once, while Redis sees one command for the whole wait.

Under a pool manager the block has no time-out: the manager wakes its idle workers locally
(``LOOK_AGAIN``, ``worker/signal_flags.py``) when a pause, a queue or a job pushed by another
client concerns them (``pool/idle_watch.py``), and the kernel does when the manager dies.
A worker alone (``resque_work``) blocks until its interval ends, then polls, as Resque
does. Either way the worker wakes locally every ``TICK`` (no Redis) to report progress to
its manager and to check that the manager is still there.
"""

from __future__ import annotations

import logging
import math

from resque_pool.resque.wakeup import TokenWait
from resque_pool.worker.signal_flags import WorkerSignals

logger = logging.getLogger(__name__)

# Longest local sleep: progress for hang detection and the manager check come round at
# least this often, without a word to Redis.
TICK = 1.0

TOKEN, SIGNAL, TICKED, TIMED_OUT = "token", "signal", "tick", "timed out"


class WakeUps:
    def __init__(self) -> None:
        self.tokens = TokenWait()

    def wait(self, queues: list[str], remaining: float | None, signals: WorkerSignals) -> str:
        """Wait at most ``TICK`` on ``queues``' wake-up keys, keeping one block pending
        from call to call: ``TOKEN`` (a job may be there), ``SIGNAL``, ``TICKED`` (the
        block goes on; call again), or ``TIMED_OUT`` (the block of ``remaining`` seconds
        ended). ``remaining`` None blocks for ever."""
        if self.tokens.pending and self.tokens.queues != queues:
            self.tokens.cancel()
        if not self.tokens.pending:
            self.tokens.start(queues, _server_timeout(remaining))
        fd = self.tokens.fileno()
        if fd is None:
            self.tokens.cancel()
            return TIMED_OUT
        tick = TICK if remaining is None else min(TICK, remaining + 0.5)
        outcome = signals.wait_beside(fd, tick)
        if outcome == "ready":
            return TOKEN if self.tokens.result() is not None else TIMED_OUT
        return SIGNAL if outcome == "signal" else TICKED

    def cancel(self) -> None:
        """End a pending block (the wait is over without a token)."""
        self.tokens.cancel()


def _server_timeout(remaining: float | None) -> int:
    """BLPOP's time-out: 0 (for ever), else the whole seconds left, at least one."""
    if remaining is None:
        return 0
    return max(1, math.ceil(remaining))
