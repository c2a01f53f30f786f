"""The pool manager: one loop that reaps, handles one signal, reloads counts, reconciles.

Mirrors resque-pool's ``Resque::Pool#join`` (resque-pool's ``lib/resque/pool.rb``) with the
differences ``docs/migrating-from-resque-pool.md`` explains: a failing configuration never
kills the manager, quick deaths back off, WINCH holds the pool at zero until HUP, excess
workers get the TERM_CHILD-aware signal, dead workers are cleaned up in Redis at once, and
the live state is published for the admin. What the loop reconciles with (spawning,
stopping, backoff, recycling, hung workers) is ``pool/reconcile.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import setproctitle
from django.db import connections

from resque_pool import failure_backends
from resque_pool.conf import settings
from resque_pool.config_error import ConfigError, one_line
from resque_pool.logs import LogOnce
from resque_pool.pool import killer, slots
from resque_pool.pool import state as pool_state
from resque_pool.pool.autoscaling import AutoscaleWatch
from resque_pool.pool.config import max_workers
from resque_pool.pool.daemon import Redirects, reopen_logs
from resque_pool.pool.dead_workers import PeriodicPrune
from resque_pool.pool.health_file import HealthFile
from resque_pool.pool.idle_watch import IdleWatch
from resque_pool.pool.loaders import PoolConfig, Source
from resque_pool.pool.reconcile import Reconciler
from resque_pool.pool.scheduler_child import SchedulerChild
from resque_pool.pool.signal_queue import SIGNAL_29, SignalQueue, name
from resque_pool.pool.takeover import POLL as TAKEOVER_POLL
from resque_pool.pool.takeover import TakeOver
from resque_pool.resque import connection, job_metrics
from resque_pool.resque.outages import describe, outage
from resque_pool.unix.process import reaped
from resque_pool.worker.options import term_child_enabled

logger = logging.getLogger(__name__)
_Part = TypeVar("_Part")

GRACEFUL_AND_WAIT = "graceful_worker_shutdown_and_wait"
GRACEFUL = "graceful_worker_shutdown"
# The live state is published when it changes, and refreshed this often within its expiry
# (RESQUE_POOL_STATE_TTL): an idle pool writes it a few times a minute.
STATE_REFRESHES_PER_TTL = 3
# The manager's own Redis calls (publishing its state, pruning, finding other pools) are
# short: a Redis that accepts connections but never answers must not stall the loop that
# reaps and respawns workers.
MANAGER_REDIS_TIMEOUT = 5.0


@dataclass
class Options:
    environment: str | None
    pool: str
    appname: str
    spawn_delay: float = 0.0  # seconds
    term_behavior: str | None = None
    single_process_group: bool = False
    handle_winch: bool = False
    kill_others: bool = False
    take_over: bool = False  # --hot-swap: the other pools' slots, one by one
    redirects: Redirects | None = None
    loader_period: float = field(default_factory=lambda: float(settings.RESQUE_POOL_LOADER_PERIOD))
    scheduler: bool = field(default_factory=lambda: bool(settings.RESQUE_SCHEDULER))


class Manager:
    def __init__(self, source: Source, options: Options) -> None:
        self.source = source
        self.options = options
        self.term_child = term_child_enabled()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = pool_state.pool_id(self.host, self.pid)
        # Job events (retries, requeues, ...) are also counted for this pool, by its
        # workers too, which inherit it with the fork (resque/job_metrics.py).
        job_metrics.set_pool(self.id)
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.counts: dict[str, int] = {}
        self.limits: dict[str, dict[str, int]] = {}  # each queue list's own limits
        self.maximums: dict[str, int] = {}  # the autoscaled lists' (their counts are floors)
        self.paused = False  # WINCH: hold at zero until HUP
        self.status = "starting"
        self.title = ""
        self.signals = SignalQueue()
        self.reconciler = Reconciler(
            self.pid,
            self.term_child,
            options.spawn_delay,
            options.single_process_group,
            self.signals,
        )
        self.workers = self.reconciler.workers
        self.next_load = 0.0
        self.next_publish = 0.0
        self.load_errors = LogOnce(logger)
        self.limit_errors = LogOnce(logger)
        self.maximum_errors = LogOnce(logger)
        self.loaded_once = False
        self.publish_errors = LogOnce(logger)
        self.killer = killer.KillOthers(options.appname, self.host, self.pid, options.kill_others)
        self.takeover = TakeOver(options.appname, self.pid) if options.take_over else None
        self.scheduler = SchedulerChild(
            options.scheduler, self.pid, options.appname, options.single_process_group
        )
        self.pruner = PeriodicPrune(self.id)
        # Redis on behalf of the idle workers: one poll per INTERVAL, the control channel,
        # their heartbeats (pool/idle_watch.py).
        self.watch = IdleWatch(self.workers)
        # The autoscaled lists' targets, between their counts and maximums.
        self.autoscale = AutoscaleWatch(self.workers)
        self._published: dict[str, Any] | None = None
        # Liveness for probes (resque_pool/health.py): touched each time the loop comes round.
        self.health = HealthFile(self.pid)
        self._health_key: tuple[Any, ...] | None = None
        self._health_state: dict[str, Any] = {}

    # -- life cycle ------------------------------------------------------------------------

    def run(self) -> None:
        self.start()
        try:
            self.join()
        finally:
            self.finish()

    def start(self) -> None:
        self.procline("(starting)")
        self.beat()
        self.signals.install()
        connection.set_socket_timeout(MANAGER_REDIS_TIMEOUT)
        self.load_counts()
        # Before the first fork: the manager's Redis client then connects once (and imports
        # the idna codec getaddrinfo() uses, and runs redis-py's and glibc's first-use
        # paths) in pages its workers share, not once per worker after the fork.
        self.publish(force=True)
        self.maintain()
        self.status = "running"
        self.procline("(started)")
        logger.info("started manager")
        pids = self.workers.pids()
        if pids:
            logger.info("Pool contains worker PIDs: %s", pids)
        else:
            logger.info("Pool is empty")
        self.publish(force=True)
        self.beat()

    def join(self) -> None:
        while True:
            self.reap()
            self.signals.log_dropped()
            signum = self.signals.pop()
            if signum is not None:
                if self.handle_signal(signum):
                    break
            else:
                self.signals.sleep(self.sleep_timeout(), self.watch.fds())
                # What woke us is often a CHLD: reap before reconciling, so that a dead
                # worker is replaced now rather than on the next wake-up.
                self.reap()
                if time.monotonic() >= self.next_load:
                    self.load_counts()
                self.autoscale.tick(self.id)
                self.maintain()
            self.procline(f"managing {self.workers.pids()}")
            self.publish()
            self.beat()
            self.watch.tick()
            self.reconciler.cleanups.tick()
            self.reconciler.kill_hung_workers()
            self.pruner.tick(self.workers.queue_lists())
            if self.counts_trusted():
                self.killer.tick(self.workers, self.desired())
            if self.round_done():
                break

    def round_done(self) -> bool:
        """After each round of the loop; True ends it (a retired generation, whose last
        worker exited: ``pool/generation.py``)."""
        return False

    def finish(self) -> None:
        self.health.remove()
        self.watch.close()
        self.scheduler.stop()
        self.status = "stopped"
        self.procline("(shutting down)")
        try:
            pool_state.withdraw(self.id)
        except Exception as error:  # noqa: BLE001 (Redis down must not hide the exit)
            logger.warning("could not withdraw the pool state: %s", error)
        self.signals.ignore_from_now_on()
        self.signals.close()
        # Failures of dead workers the manager reported; atexit would too, but only if
        # nothing after us calls os._exit.
        failure_backends.flush()
        logger.info("manager finished")

    # -- counts ----------------------------------------------------------------------------

    def load_counts(self) -> bool:
        """Load the configuration (counts and limits together, one call of the loader);
        keep the last good counts on any failure, and the last good limits when only the
        limits are wrong, each logged once per change."""
        self.next_load = time.monotonic() + self.options.loader_period
        try:
            config = self.source.load(self.options.environment)
            counts = self.source.counts_of(config)
        except Exception as error:  # noqa: BLE001 (a loader may raise anything)
            message = one_line(error)
            self.load_errors.error(
                message,
                "could not load worker counts from %s (%s); keeping the last good counts %s",
                self.source.description,
                message,
                self.counts,
            )
            # A database error can leave the connection unusable: the next load reconnects.
            # (A good one stays open between loads, one per pool rather than a connection
            # a second; spawn.prepare_to_fork closes it before any fork.)
            connections.close_all()
            return False
        self.loaded_once = True
        self.load_errors.clear("worker counts from %s load again", self.source.description)
        if counts != self.counts:
            logger.info("worker counts from %s: %s", self.source.description, counts)
            self.counts = counts
        self.apply_limits(config)
        self.apply_maximums(config)
        return True

    def apply_limits(self, config: PoolConfig) -> None:
        """The limits that workers forked from now on start with; the last good ones stay
        when the loader's are invalid (a worker never starts with half a configuration)."""
        limits = self.checked("limits", self.limit_errors, lambda: self.source.limits_of(config))
        if limits is not None and limits != self.limits:
            logger.info("limits per queue list from %s: %s", self.source.description, limits)
            self.limits = limits

    def apply_maximums(self, config: PoolConfig) -> None:
        """The autoscaled lists and their bounds; the last good maximums stay when the
        loader's are invalid (the counts, already good, apply meanwhile)."""
        maximums = self.checked(
            "maximums", self.maximum_errors, lambda: self.source.maximums_of(config, self.counts)
        )
        if maximums is not None and maximums != self.maximums:
            logger.info("autoscaled lists from %s: %s", self.source.description, maximums)
            self.maximums = maximums
        self.autoscale.set_bounds(self.counts, self.maximums)

    def checked(self, part: str, errors: LogOnce, read: Callable[[], _Part]) -> _Part | None:
        """``read()``, a part of the configuration checked apart from the counts, or None
        when it is invalid: logged once per distinct error, the last good one kept."""
        try:
            value = read()
        except ConfigError as error:
            errors.error(
                str(error),
                f"could not load the {part} from %s (%s); keeping the last good {part}",
                self.source.description,
                error,
            )
            return None
        errors.clear(f"the {part} from %s load again", self.source.description)
        return value

    def counts_trusted(self) -> bool:
        """Counts loaded at least once and loading now: only then may --kill-others judge
        this pool complete (an empty pool that failed to load must not stop the old one)."""
        return self.loaded_once and not self.load_errors.active and not self.paused

    def desired(self) -> dict[str, int]:
        """The counts to run now (an autoscaled list's target in place of its count):
        none while paused (WINCH), and never more than the slots that other processes of
        this app (``held``) leave free."""
        if self.paused:
            return {}
        wanted = self.autoscale.sized(self.counts)
        return slots.fit(wanted, self.held(), lambda queues: len(self.workers.of(queues)))

    def held(self) -> dict[str, int]:
        """Slots of the counts other processes hold: the workers of the pools a
        ``--hot-swap`` takes over, until each has finished its job and left."""
        return self.takeover.held() if self.takeover else {}

    # -- reconciliation --------------------------------------------------------------------

    def maintain(self) -> None:
        """Reconcile the workers with the counts wanted now, and the scheduler child."""
        self.reconciler.maintain(self.desired(), self.limits)
        self.scheduler.maintain(self.signals.handled, self.signals.fds)

    def stop_signal(self) -> int:
        return self.reconciler.stop_signal()

    # -- reaping ---------------------------------------------------------------------------

    def reap(self) -> None:
        for pid, code in reaped():
            self.worker_exited(pid, code)

    def worker_exited(self, pid: int, code: int) -> None:
        if not self.scheduler.reaped(pid, code):
            self.reconciler.worker_exited(pid, code)

    # -- signals ---------------------------------------------------------------------------

    def handle_signal(self, signum: int) -> bool:
        """Handle one signal; True ends the loop."""
        if signum == signal.SIGHUP:
            self.hup()
        elif signum == signal.SIGQUIT:
            if self.term_child:
                return self.shutdown_everything_now(signum)
            return self.graceful_worker_shutdown_and_wait(signum)
        elif signum == signal.SIGINT:
            return self.graceful_worker_shutdown(signum)
        elif signum == signal.SIGTERM:
            if self.options.term_behavior == GRACEFUL_AND_WAIT:
                return self.graceful_worker_shutdown_and_wait(signum)
            if self.options.term_behavior == GRACEFUL:
                return self.graceful_worker_shutdown(signum)
            return self.shutdown_everything_now(signum)
        elif signum == signal.SIGWINCH:
            self.winch()
        elif signum == SIGNAL_29:
            logger.info(
                "%s: no siginfo hooks here; pool contains %s", name(signum), self.workers.pids()
            )
        else:  # USR1, USR2, CONT
            logger.info("%s: sending to all workers", name(signum))
            self.workers.signal_all(signum, stopping=False)
        return False

    def hup(self) -> None:
        logger.info("HUP: reset configuration and reload logs")
        try:
            self.source.loader.reset()
        except Exception as error:  # noqa: BLE001 (a loader may raise anything)
            logger.error("HUP: the loader's reset() failed: %s", error)
        loaded = self.load_counts()
        reopen_logs(self.options.redirects)
        self.paused = False
        self.status = "running"
        if loaded:
            logger.info("HUP: gracefully restarting all workers")
            self.workers.signal_all(self.stop_signal())
        else:
            logger.error("HUP: configuration did not load; keeping the current workers")
        self.maintain()

    def winch(self) -> None:
        if not self.options.handle_winch:
            logger.info("ignoring SIGWINCH (only handled with --daemon)")
            return
        logger.info("WINCH: gracefully stopping all workers (until HUP)")
        self.paused = True
        self.status = "paused"
        self.maintain()

    def graceful_worker_shutdown_and_wait(self, signum: int) -> bool:
        logger.info("%s: graceful shutdown, waiting for children", name(signum))
        self.status = "stopping"
        # QUIT, or TERM under TERM_CHILD (resque-pool 0.8.0): with TERM_CHILD a worker
        # gives its job RESQUE_TERM_TIMEOUT, so the wait is bounded (systemd, Heroku).
        self.workers.signal_all(self.stop_signal())
        self.wait_for_workers()
        return True

    def graceful_worker_shutdown(self, signum: int) -> bool:
        logger.info("%s: immediate shutdown (graceful worker shutdown)", name(signum))
        self.workers.signal_all(self.stop_signal())
        return True

    def shutdown_everything_now(self, signum: int) -> bool:
        logger.info("%s: immediate shutdown (and immediate worker shutdown)", name(signum))
        self.workers.signal_all(signal.SIGQUIT if self.term_child else signal.SIGTERM)
        return True

    def wait_for_workers(self) -> None:
        """Reap until every worker is gone; INT or TERM cuts the wait short."""
        while self.workers:
            self.reap()
            if not self.workers:
                return
            if {signal.SIGINT, signal.SIGTERM} & set(self.signals.drain()):
                logger.info("short circuiting QUIT waitpid")
                return
            self.procline(f"managing {self.workers.pids()}")
            self.publish()
            self.beat()
            self.signals.sleep(1.0)

    # -- timing, state, proclines ----------------------------------------------------------

    def sleep_timeout(self) -> float:
        """Until the next load or publish, or the moment a list waiting on the spawn delay
        or its backoff may spawn; at most a second. Only deadlines still ahead count: one
        already passed would make the loop spin instead of sleep."""
        now = time.monotonic()
        deadlines = [
            self.next_load,
            self.next_publish,
            # A slot an old pool's worker frees is filled at once, not a second later.
            *([now + TAKEOVER_POLL] if self.takeover and self.takeover.active else []),
            self.watch.deadline(),
            self.autoscale.deadline(),
            *self.reconciler.spawn_deadlines(self.desired()),
        ]
        ahead = [deadline - now for deadline in deadlines if deadline > now]
        return min([*ahead, 1.0])

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "appname": self.options.appname,
            "pool": self.options.pool,
            "environment": self.options.environment or "",
            "started": self.started_at,
            "counts": self.counts,  # what the pool applies: the last good counts
            # Each autoscaled list's floor, max, target and last decision.
            "autoscale": self.autoscale.state(),
            # Where they come from and the ceiling they must fit under, so the admin can
            # warn when the rows a database pool merges add up to more.
            "source": self.source.description,
            "max_workers": max_workers(),
            "workers": self.workers.pids_by_queues(),
            "status": self.status,
            # Counters and the workers' memory, for the metrics view (pool/figures.py).
            "figures": self.reconciler.figures.snapshot(self.workers.pids()),
            # The memory budget: what the tree may use and uses, what fits (capacity/).
            "memory": self.reconciler.budget.snapshot(self.workers.pids()),
        }

    def publish(self, force: bool = False) -> None:
        """Publish the live state when it changed, and refresh it within its expiry."""
        now = time.monotonic()
        state = self.state()
        if not force and now < self.next_publish and state == self._published:
            return
        ttl = max(float(settings.RESQUE_POOL_STATE_TTL), 1.0)
        self.next_publish = now + max(ttl / STATE_REFRESHES_PER_TTL, 1.0)
        try:
            pool_state.publish(state)
        except Exception as error:  # noqa: BLE001 (Redis down must not stop the pool)
            # Once per kind of outage (each refused command words it differently).
            kind = outage(error)
            text = describe(error) if kind not in (None, "down") else str(error)
            self.publish_errors.error(kind or text, "could not publish the pool state: %s", text)
            self.next_publish = now + 1.0  # tried again in a second
            self._published = None
            return
        self._published = state
        self.publish_errors.clear()

    def beat(self) -> None:
        """Tell probes the loop came round, with what readiness needs: the status, whether
        counts ever loaded, and the workers that should be registered."""
        # Ready means the floors run: an autoscaled list growing towards its target (or
        # held there by the memory budget) is extra capacity, not a pool short of workers.
        desired = {q: min(n, self.counts.get(q, n)) for q, n in self.desired().items()}
        active = [proc for proc in self.workers.all() if not proc.stopping]
        facts = (self.status, self.loaded_once, *desired.items(), *(p.pid for p in active))
        if facts != self._health_key:  # worker ids only when the workers changed
            self._health_key = facts
            self._health_state = {
                "pid": self.pid,
                "appname": self.options.appname,
                "pool": self.options.pool,
                # Which Resque data the pool serves: a --hot-swap takes over only the pools
                # of its own app that serve the same (another namespace is another stage).
                "redis": connection.describe_redis(),
                "namespace": connection.namespace(),
                "status": self.status,
                "loaded": self.loaded_once,
                "complete": self.workers.complete(desired),
                "desired": sum(desired.values()),
                "workers": [proc.id for proc in active],
            }
        self.health.beat(self._health_state)

    def procline(self, text: str) -> None:
        title = f"resque-pool-master[{self.options.appname}]: {text}"
        if title != self.title:  # the loop runs often; the title rarely changes
            setproctitle.setproctitle(title)
            self.title = title
