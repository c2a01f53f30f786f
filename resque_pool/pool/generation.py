"""One generation of the pool: the manager of one release of the application.

The master (``pool/master.py``) starts it in a new interpreter; it is ``Manager`` with
what a generation adds:

- it says ``ready`` only once the code imported, the checks passed and the counts loaded
  (for a reload: the first generation starts empty when its counts cannot load, as the
  manager always did), and forks nothing before the master's go-ahead, ``others``: the
  slots older generations still hold;
- while an older generation drains, it spawns only into slots that one freed: per queue
  list, and in all, its workers and the older ones' never add up to more than the counts;
  the scheduler child starts only once the older one is gone;
- told to ``retire``, its workers finish their jobs and exit (QUIT, whatever TERM_CHILD
  says: a deploy must not cut a job short), its scheduler stops, and it reports each slot
  freed; a worker still busy after ``RESQUE_POOL_DRAIN_TIMEOUT`` is stopped (TERM) and its
  job follows the loss policy. It exits once nothing of it runs;
- the pool's identity stays the master's: the published state and the health file (which
  the master writes from this generation's beats) carry the master's pid, and
  ``--kill-others`` never takes its own master for another pool;
- HUP is the master's: a generation ignores one sent to it directly.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

import setproctitle

from resque_pool import failure_backends
from resque_pool.conf import settings
from resque_pool.logs import LogOnce
from resque_pool.pool import killer, slots
from resque_pool.pool import state as pool_state
from resque_pool.pool.daemon import reopen_logs
from resque_pool.pool.link import Link
from resque_pool.pool.manager import Manager, Options
from resque_pool.pool.processes import send_signal
from resque_pool.pool.signal_queue import REOPEN_LOGS, SignalQueue
from resque_pool.pool.takeover import TakeOver
from resque_pool.resque import job_metrics
from resque_pool.unix.self_pipe import Waker

logger = logging.getLogger(__name__)


class BootFailed(Exception):
    """This generation will not become ready; the message is the master's log line."""


class MasterGone(Exception):
    """The master's end of the link closed."""


class LinkedWaker(Waker):
    """The signal self-pipe, and the master's link: either wakes the loop."""

    def __init__(self, link: Link) -> None:
        super().__init__()
        self.link = link

    def wait(self, timeout: float) -> bool:
        return bool(self.wait_beside((), timeout))

    def wait_beside(self, fds: Iterable[int], timeout: float) -> set[int]:
        link = () if self.link.closed else (self.link.fileno(),)
        return super().wait_beside((*fds, *link), timeout)


class GenerationSignals(SignalQueue):
    """The manager's queue, plus the log-reopening signal; a forked child closes the link."""

    def __init__(self, link: Link) -> None:
        super().__init__()
        self.waker = LinkedWaker(link)
        self.link = link

    def install(self) -> None:
        super().install()
        signal.signal(REOPEN_LOGS, self._enqueue)

    @property
    def handled(self) -> tuple[int, ...]:
        return (*super().handled, REOPEN_LOGS)

    @property
    def fds(self) -> tuple[int, ...]:  # type: ignore[override]
        return (*super().fds, self.link.fileno())


class LinkHealth:
    """In place of the manager's health file: the beats go to the master, which writes
    the file under its own pid (and stops touching it when either loop stops)."""

    def __init__(self, link: Link, master_pid: int) -> None:
        self.link = link
        self.master_pid = master_pid
        self.sent: dict[str, Any] | None = None

    def beat(self, state: dict[str, Any]) -> None:
        state = {**state, "pid": self.master_pid}
        self.link.send({"beat": None if state == self.sent else state})
        self.sent = state

    def remove(self) -> None:
        pass


class GenerationManager(Manager):
    def __init__(
        self,
        source: Any,
        options: Options,
        link: Link,
        number: int,
        master_pid: int,
        must_load: bool,
    ) -> None:
        super().__init__(source, options)
        self.link = link
        self.number = number
        self.master_pid = master_pid
        self.others: dict[str, int] | None = None  # None until the master's go-ahead
        self.old_scheduler = False  # an older generation's scheduler still runs
        self.retiring = False
        self.retired_at = 0.0
        self.drain_stopped = False
        self.deploy_note: str | None = None
        self.sent_held: dict[str, Any] | None = None
        self.master_gone = False
        # The pool is the master's: its pid names the published state and the health
        # file, and is the one --kill-others must never signal.
        self.signals.close()
        self.signals = GenerationSignals(link)
        self.reconciler.signals = self.signals
        # The memory budget counts the whole pool: the master, every generation, workers.
        self.reconciler.budget.root_pid = master_pid
        self.id = pool_state.pool_id(self.host, master_pid)
        # Its workers count their job events for the master's pool (resque/job_metrics.py).
        job_metrics.set_pool(self.id)
        self.health = LinkHealth(link, master_pid)
        self.must_load = must_load
        # --kill-others is about the pool's start: a reload must not judge other pools.
        self.killer = killer.KillOthers(
            options.appname, self.host, master_pid, options.kill_others and not must_load
        )
        # The same for a hot swap: a reload takes over from its own older generation.
        self.takeover = (
            TakeOver(options.appname, master_pid) if options.take_over and not must_load else None
        )

    # -- boot ------------------------------------------------------------------------------

    def boot(self) -> None:
        """Load the counts, say ready, wait for the go-ahead; BootFailed if the counts do
        not load for a reload (the running generation then stays)."""
        self.procline("(loading)")
        self.signals.install()
        # A reload that cannot load its counts is said once, by the master; the first
        # generation starts empty and says it here, as the manager always did.
        loud = self.load_errors
        if self.must_load:
            self.load_errors = LogOnce(logger, logging.DEBUG)
        loaded = self.load_counts()
        quiet, self.load_errors = self.load_errors, loud
        if not loaded and self.must_load:
            raise BootFailed(
                f"configuration did not load: could not load worker counts from "
                f"{self.source.description} ({quiet.key or 'error'})"
            )
        self.link.send({"ready": True})
        self.procline("(ready, waiting for the go-ahead)")
        while self.others is None:
            self.signals.waker.wait(1.0)
            self.read_link()
            if self.link.closed:
                raise MasterGone()

    # -- the master's messages -------------------------------------------------------------

    def read_link(self) -> None:
        for message in self.link.receive():
            if "others" in message:
                self.others = {str(q): int(n) for q, n in dict(message["others"]).items()}
                self.old_scheduler = bool(message.get("scheduler"))
                if self.status != "starting":
                    self.maintain()  # a freed slot is filled now, not a loop later
            if message.get("retire"):
                self.retire()
            if "deploy" in message:
                self.deploy_note = message["deploy"]
                self.publish(force=True)

    def retire(self) -> None:
        if self.retiring:
            return
        logger.info("generation %d retires: its workers finish their jobs and exit", self.number)
        self.retiring = True
        self.status = "retiring"
        self.retired_at = time.monotonic()
        # QUIT whatever TERM_CHILD says: a deploy waits for the job (bounded below).
        self.workers.signal_all(signal.SIGQUIT)
        self.scheduler.stop()
        self.report_held(retired=True)

    def report_held(self, retired: bool = False) -> None:
        held = {
            "held": {q: len(self.workers.of(q)) for q in self.workers.queue_lists()},
            "pids": self.workers.pids(),
            "scheduler": bool(self.scheduler.pids),
        }
        if retired or held != self.sent_held:
            self.link.send({**held, **({"retired": True} if retired else {})})
            self.sent_held = held

    def round_done(self) -> bool:
        self.read_link()
        if self.link.closed and not self.master_gone:
            # As a worker whose manager is gone: finish the jobs, then exit.
            logger.error("generation %d: the master is gone; stopping the workers", self.number)
            self.master_gone = True
            self.workers.signal_all(self.stop_signal())
            return True
        self.report_held()
        if self.retiring:
            self.bound_the_drain()
            return not self.workers and not self.scheduler.pids
        return False

    def bound_the_drain(self) -> None:
        limit = settings.RESQUE_POOL_DRAIN_TIMEOUT
        if limit is None or self.drain_stopped:
            return
        if time.monotonic() - self.retired_at < limit:
            return
        self.drain_stopped = True
        for proc in self.workers.all():
            logger.warning(
                "generation %d: worker %d still busy after %gs (RESQUE_POOL_DRAIN_TIMEOUT); "
                "stopping it, its job follows the loss policy",
                self.number,
                proc.pid,
                limit,
            )
            send_signal(proc.pid, signal.SIGTERM)

    # -- what differs from a lone manager --------------------------------------------------

    def desired(self) -> dict[str, int]:
        if self.retiring or self.others is None:
            return {}
        return super().desired()

    def held(self) -> dict[str, int]:
        """The slots older generations still hold (the master's ``others``), besides the
        other pools a hot swap takes over."""
        return slots.merge(self.others or {}, super().held())

    def maintain(self) -> None:
        self.reconciler.maintain(self.desired(), self.limits)
        if self.retiring or self.others is None or self.old_scheduler:
            return  # never two schedulers: the older one is still stopping
        self.scheduler.maintain(self.signals.handled, self.signals.fds)

    def handle_signal(self, signum: int) -> bool:
        if signum == REOPEN_LOGS:
            reopen_logs(self.options.redirects)
            return False
        return super().handle_signal(signum)

    def hup(self) -> None:
        logger.info(
            "HUP ignored by generation %d: send it to the master (pid %d) to deploy",
            self.number,
            self.master_pid,
        )

    def publish(self, force: bool = False) -> None:
        if self.others is not None and not self.retiring:
            super().publish(force)

    def beat(self) -> None:
        if self.others is not None and not self.retiring:
            super().beat()

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "pid": self.master_pid,
            "generation": self.number,
            "deploy": self.deploy_note,
        }

    def procline(self, text: str) -> None:
        state = "retiring: " if self.retiring else ""
        title = f"resque-pool-generation[{self.options.appname}] {self.number}: {state}{text}"
        if title != self.title:
            setproctitle.setproctitle(title)
            self.title = title

    def finish(self) -> None:
        if not (self.retiring or self.master_gone):
            super().finish()
            return
        # Its successor (or nobody, the master being gone) owns the published state.
        self.scheduler.stop()
        self.status = "stopped"
        self.procline("(finished)")
        self.signals.ignore_from_now_on()
        self.signals.close()
        failure_backends.flush()
        logger.info("generation %d finished", self.number)
