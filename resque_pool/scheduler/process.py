"""The scheduler process: move due delayed jobs and fire recurring schedules when they fall
due, talking to Redis only then.

It sleeps until the earliest delayed item is due (read from ``delayed_queue_schedule``)
or its poll comes round (``POLL``, resque-scheduler's own, for items other clients push),
woken at once by our control channel when one of ours pushes an item due sooner
(``resque/control.py``). The leader of recurring schedules sleeps until the next run and
refreshes its lock a few times per ``RESQUE_SCHEDULER_LEADER_TTL``
(``scheduler/recurring.py``); it reads the schedules from the database every ``TICK``, so
an edit counts within a second. Items are moved just past the whole second of Redis's
clock they are due at.

Run alone (``manage.py resque_scheduler``) or as a child of the pool manager
(``resque_pool.pool.scheduler_child``). TERM, INT and QUIT end it after the current step; a
child whose manager is gone ends too. A Redis error is logged once and retried a second
later: the process keeps running.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from typing import Any

import setproctitle
from django.db import close_old_connections

from resque_pool.logs import LogOnce
from resque_pool.resque import control
from resque_pool.scheduler import mover
from resque_pool.scheduler.recurring import Recurring
from resque_pool.unix.parent_death import signal_on_parent_death
from resque_pool.unix.self_pipe import Waker
from resque_pool.worker.signal_flags import LOOK_AGAIN

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# The longest local sleep (the database's schedules, the manager check): no Redis.
TICK = 1.0
# Delayed items other clients push (Ruby's enqueue_at) are found at least this often, as
# resque-scheduler's own poll finds them (5 s by default); ours wake the scheduler at once.
POLL = 5.0
# Just past the whole second an item is due at, on Redis's clock.
PAST_THE_SECOND = 0.01


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
        # Redis's clock less ours, measured at each poll: the loop wakes just past the whole
        # second of the clock the items are due by, whatever this host's clock says.
        self.offset = 0.0
        self.next_poll = 0.0  # time.monotonic() of the next look at the delayed queue
        self.next_item = math.inf  # when the earliest delayed item is due (Redis's clock)
        self.control: Any = None  # our control channel, subscribed

    def run(self) -> None:
        self.install_signals()
        if self.manager_pid is not None:
            # The kernel wakes us when the manager dies; the loop then sees it is gone.
            signal_on_parent_death(LOOK_AGAIN, self.manager_pid)
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
                    self.sleep()
        finally:
            self.recurring.stop()
            self.unsubscribe()
            self.waker.close()
            logger.info("scheduler finished (pid %d)", os.getpid())

    def estimate(self) -> float:
        """Redis's clock as last measured, without asking."""
        return time.time() + self.offset

    def tick(self) -> None:
        due = time.monotonic() >= self.next_poll or self.estimate() >= self.next_item
        if due or self.redis_errors.active:
            try:
                self.move_delayed()
            except Exception as error:  # noqa: BLE001 (Redis down: retry in a second)
                self.unsubscribe()
                self.next_poll = time.monotonic() + TICK
                text = _text(error)
                self.redis_errors.error(text, "scheduler: %s (retrying every second)", text)
                return
            self.redis_errors.clear("scheduler: Redis answers again")
        try:
            # As Django does around a request: drop a connection that broke or aged out.
            close_old_connections()
            self.recurring.tick(estimate=self.estimate())
        except Exception as error:  # noqa: BLE001 (database or Redis down: next tick)
            text = _text(error)
            self.recurring_errors.error(
                text, "scheduler: recurring schedules: %s (retrying every second)", text
            )
            return
        self.recurring_errors.clear("scheduler: recurring schedules work again")

    def move_delayed(self) -> None:
        """Move what is due, and learn when the next item falls due: two commands when
        nothing is (``TIME`` and the schedule's first entry)."""
        self.subscribe()
        now, earliest = mover.earliest_due()
        self.offset = now - time.time()
        self.next_poll = time.monotonic() + POLL
        if earliest is not None and earliest <= now:
            moved = mover.move_due(now)
            if moved.moved:
                logger.info("moved %d due delayed job(s) to their queues", moved.moved)
            earliest = mover.next_after(now)
        self.next_item = math.inf if earliest is None else earliest

    def sleep_time(self) -> float:
        """Until the next poll, the next delayed item (just past its second) or the next
        recurring run, at most ``TICK``."""
        estimate = self.estimate()
        deadlines = [self.next_poll - time.monotonic(), TICK]
        if self.next_item < math.inf:
            deadlines.append(self.next_item + PAST_THE_SECOND - estimate)
        if self.recurring.next_due is not None:
            deadlines.append(self.recurring.next_due + PAST_THE_SECOND - estimate)
        return max(min(deadlines), 0.0)

    def sleep(self) -> None:
        fds = [fd] if (fd := control.socket_of(self.control)) is not None else []
        readable = self.waker.wait_beside(fds, self.sleep_time())
        if fds and fds[0] in readable:
            self.read_control()

    # -- our control channel ---------------------------------------------------------------

    def subscribe(self) -> None:
        if self.control is None:
            self.control = control.subscribe()

    def unsubscribe(self) -> None:
        if self.control is not None:
            pubsub, self.control = self.control, None
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 (a broken connection is what we drop)
                logger.debug("closing the control subscription", exc_info=True)

    def read_control(self) -> None:
        """A delayed item of ours due sooner than the one we sleep for wakes us for it."""
        try:
            news = control.messages(self.control)
        except Exception:  # noqa: BLE001 (Redis went away: the next poll says so)
            self.unsubscribe()
            self.next_poll = time.monotonic()
            return
        for message in news:
            kind, _, stamp = message.partition(" ")
            if kind == control.DELAYED:
                try:
                    self.next_item = min(self.next_item, float(stamp))
                except ValueError:
                    self.next_poll = time.monotonic()

    def install_signals(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop)
        signal.signal(LOOK_AGAIN, self._wake)  # the manager died (parent-death signal)
        # Forked by a pool with the manager's signals blocked (pool/spawn.py fork_child):
        # one that arrived meanwhile is delivered now, to these handlers.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())

    def _wake(self, signum: int, frame: object) -> None:
        self.waker.wake()

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
