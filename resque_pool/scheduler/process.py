"""The scheduler process: move due delayed jobs and fire recurring schedules about once
a second.

Run alone (``manage.py resque_scheduler``) or as a child of the pool manager
(``resque_pool.pool.scheduler_child``). TERM, INT and QUIT end it after the current step; a
child whose manager is gone ends too. A Redis error is logged once and retried a second
later: the process keeps running.
"""

from __future__ import annotations

import logging
import os
import signal
import time

import setproctitle
from django.db import close_old_connections

from resque_pool.logs import LogOnce
from resque_pool.scheduler import mover
from resque_pool.scheduler.recurring import Recurring
from resque_pool.unix.self_pipe import Waker

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# Resque's own scheduler polls every 5 s by default; a due job should reach its queue within
# about a second here, so the loop wakes just after each whole second (items are kept to
# the second).
TICK = 1.0


class Scheduler:
    def __init__(self, appname: str = "", manager_pid: int | None = None) -> None:
        self.appname = appname
        self.manager_pid = manager_pid
        self.stopping = False
        self.waker = Waker()
        self.redis_errors = LogOnce(logger)
        self.title = ""
        self.recurring = Recurring()
        self.recurring_errors = LogOnce(logger)
        # Redis's clock less ours, measured each tick: the loop wakes just past each whole
        # second of the clock the items are due by, whatever this host's clock says.
        self.offset = 0.0

    def run(self) -> None:
        self.install_signals()
        self.procline("starting")
        logger.info("scheduler started (pid %d)", os.getpid())
        try:
            while not self.stopping:
                if self.manager_pid is not None and os.getppid() != self.manager_pid:
                    logger.info("scheduler: the pool manager is gone, exiting")
                    break
                self.tick()
                if not self.stopping:
                    self.procline("waiting")
                    self.waker.wait(self.sleep_time())
        finally:
            self.recurring.stop()
            self.waker.close()
            logger.info("scheduler finished (pid %d)", os.getpid())

    def tick(self) -> None:
        try:
            moved = mover.move_due()
        except Exception as error:  # noqa: BLE001 (Redis down: retry on the next tick)
            text = _text(error)
            self.redis_errors.error(text, "scheduler: %s (retrying every second)", text)
            return
        self.redis_errors.clear("scheduler: Redis answers again")
        self.offset = moved.now - time.time()
        if moved.moved:
            logger.info("moved %d due delayed job(s) to their queues", moved.moved)
        try:
            # As Django does around a request: drop a connection that broke or aged out.
            close_old_connections()
            self.recurring.tick()
        except Exception as error:  # noqa: BLE001 (database or Redis down: next tick)
            text = _text(error)
            self.recurring_errors.error(
                text, "scheduler: recurring schedules: %s (retrying every second)", text
            )
            return
        self.recurring_errors.clear("scheduler: recurring schedules work again")

    def sleep_time(self) -> float:
        # Just past the next whole second of Redis's clock, when the next timestamps
        # become due.
        return TICK - ((time.time() + self.offset) % TICK) + 0.01

    def install_signals(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop)
        # Forked by a pool with the manager's signals blocked (pool/spawn.py fork_child):
        # one that arrived meanwhile is delivered now, to these handlers.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True  # the loop logs and exits; a handler only sets a flag
        self.waker.wake()

    def procline(self, text: str) -> None:
        app = f"[{self.appname}]" if self.appname else ""
        title = f"resque-scheduler{app}: {text}"
        if title != self.title:
            setproctitle.setproctitle(title)
            self.title = title


def _text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
