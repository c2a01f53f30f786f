"""Reconciliation: keeping the pool's workers at the counts the manager wants.

Stops excess workers of a queue list (idle ones first, then the oldest), forks the missing
ones (subject to the spawn delay and the list's backoff), kills workers whose main loop
stopped moving, and books each worker's exit: recycled (replaced at once), died on its own
(backoff), stopped on request; every one is cleaned up in Redis. The arbiter loop that
calls it, and the signals, are ``pool/manager.py``.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Mapping

from resque_pool.capacity.memory import MemoryBudget
from resque_pool.conf import settings
from resque_pool.pool import spawn
from resque_pool.pool.backoff import Backoff
from resque_pool.pool.dead_workers import DeadWorkerCleanups
from resque_pool.pool.figures import PoolFigures
from resque_pool.pool.hangs import HangWatch
from resque_pool.pool.processes import WorkerProcess, WorkerTable, idle, send_signal
from resque_pool.pool.signal_queue import SignalQueue, name
from resque_pool.resque.queue_lists import split_queues
from resque_pool.worker.limits import RECYCLE_EXIT_CODE

logger = logging.getLogger(__name__)


class Reconciler:
    """The manager's workers and what keeps them at the desired counts.

    ``signals`` is the manager's signal queue, whose handlers and self-pipe a forked worker
    resets and closes."""

    def __init__(
        self,
        manager_pid: int,
        term_child: bool,
        spawn_delay: float,
        single_process_group: bool,
        signals: SignalQueue,
    ) -> None:
        self.manager_pid = manager_pid
        self.term_child = term_child
        self.spawn_delay = spawn_delay
        self.single_process_group = single_process_group
        self.signals = signals
        self.workers = WorkerTable()
        self.backoffs: dict[str, Backoff] = {}
        self.next_spawn = 0.0
        self.cleanups = DeadWorkerCleanups()
        self.hangs = HangWatch(settings.RESQUE_WORKER_HANG_TIMEOUT)
        self.figures = PoolFigures()  # counted for the metrics view (pool/figures.py)
        self.budget = MemoryBudget.from_settings(manager_pid)  # capacity/memory.py

    def maintain(self, desired: dict[str, int], limits: Mapping[str, Mapping[str, int]]) -> None:
        """Stop excess workers (``excess``), spawn missing ones (subject to spawn delay and
        backoff) with their list's ``limits`` (the loader's, validated). Workers already
        stopping still hold their slot until they are reaped, so replacements start as
        they exit, never on top of them."""
        now = time.monotonic()
        missing: list[str] = []  # one queue list per worker to fork
        short = False  # some list runs fewer workers than it wants
        for queues in dict.fromkeys([*desired, *self.workers.queue_lists()]):
            want = desired.get(queues, 0)
            procs = self.workers.of(queues)
            active = self.workers.active(queues)
            for proc in excess(active, len(active) - want):
                self.stop_worker(proc)
            backoff = self.backoffs.get(queues)
            if backoff:
                for proc in active:
                    backoff.survived(proc.started, now)
            short = short or want > len(procs)
            for _ in range(want - len(procs)):
                if now < self.next_spawn or (backoff and backoff.wait(now) > 0):
                    break
                missing.append(queues)
                if self.spawn_delay:
                    self.next_spawn = now + self.spawn_delay
                    break
        if missing or not short:
            # Only the workers the memory budget has room for; the others wait for a
            # later round (capacity/memory.py). Nothing short ends a refusal.
            missing = self.budget.admit(missing, self.workers.pids())
        if missing:
            self.spawn_workers(missing, limits)

    def spawn_deadlines(self, desired: dict[str, int]) -> list[float]:
        """When each list short of workers may spawn next (spawn delay, backoff)."""
        deadlines = []
        for queues, want in desired.items():
            if want > len(self.workers.of(queues)):
                backoff = self.backoffs.get(queues)
                deadlines.append(max(self.next_spawn, backoff.not_before if backoff else 0.0))
        return deadlines

    def spawn_workers(
        self, queue_lists: list[str], limits: Mapping[str, Mapping[str, int]]
    ) -> None:
        """Fork one worker per entry of ``queue_lists``, in one tight batch.

        Every page the manager writes between two forks is copied again (the previous child
        still shares the old one), so each worker's arguments (and the function its child
        runs) are made before the first fork and the bookkeeping is done after the last:
        the manager writes about 40 pages per fork instead of 260 when it prepared, forked
        and booked each worker in turn (``bench/pages.py`` and the manager's minor faults)."""
        spawn.prepare_to_fork()
        progress_fds = [self.hangs.open() for _ in queue_lists]
        batch_fds = [fd for fd in progress_fds if fd is not None]
        inherited = [*self.signals.fds, *self.hangs.fds(), *batch_fds]
        reset_signals = list(self.signals.handled)
        plans = []
        for queues, progress in zip(queue_lists, progress_fds, strict=True):
            entry, failure = spawn.worker_entry(
                split_queues(queues), self.manager_pid, progress, dict(limits.get(queues, {}))
            )
            close_fds = [fd for fd in inherited if fd != progress]
            plans.append((queues, progress, entry, failure, close_fds))
        pids: list[int] = []
        try:
            for queues, _progress, entry, failure, close_fds in plans:
                try:
                    pid = spawn.fork_child(
                        entry, self.single_process_group, reset_signals, close_fds, failure=failure
                    )
                except OSError as error:
                    logger.error("could not fork a worker for %s: %s", queues, error)
                    self.next_spawn = time.monotonic() + 1.0
                    break
                pids.append(pid)
        finally:
            now = time.monotonic()
            for (queues, progress, *_), pid in zip(plans, pids, strict=False):
                self.hangs.started(pid, progress)
                self.workers.add(WorkerProcess(pid, queues, now))
                logger.info("spawned worker %d for %s", pid, queues)
            self.figures.spawned += len(pids)
            for _queues, unused, *_ in plans[len(pids) :]:
                self.hangs.discard(unused)

    def stop_signal(self) -> int:
        # resque-pool #172: excess workers and HUP use the signal TERM_CHILD calls for.
        return signal.SIGTERM if self.term_child else signal.SIGQUIT

    def stop_worker(self, proc: WorkerProcess) -> None:
        signum = self.stop_signal()
        logger.info("stopping excess worker %d for %s with %s", proc.pid, proc.queues, name(signum))
        proc.stopping = True
        send_signal(proc.pid, signum)

    def kill_hung_workers(self) -> None:
        """SIGKILL workers whose main loop stopped reporting progress (``pool/hangs.py``);
        reaping them cleans up their job (the loss policy) and forks a replacement."""
        for pid, stalled in self.hangs.hung():
            logger.error(
                "worker %d made no progress for %.0fs (RESQUE_WORKER_HANG_TIMEOUT %gs); killing it",
                pid,
                stalled,
                self.hangs.timeout,
            )
            self.hangs.killed(pid)
            self.figures.hung_killed += 1
            send_signal(pid, signal.SIGKILL)

    def worker_exited(self, pid: int, code: int) -> None:
        """Book a reaped child that is not the scheduler (``code`` as
        ``os.waitstatus_to_exitcode`` gives it)."""
        proc = self.workers.remove(pid)
        self.hangs.forget(pid)
        if proc is None:
            logger.info("reaped unknown child %d (status: %s)", pid, code)
            return
        described = f"signal: {name(-code)}" if code < 0 else f"status: {code}"
        logger.info("Reaped resque worker[%d] (%s) queues: %s", pid, described, proc.queues)
        now = time.monotonic()
        if code == RECYCLE_EXIT_CODE:
            # It reached its max jobs or memory and exited cleanly: replaced at once.
            logger.info("worker %d for %s recycled itself; replacing it", pid, proc.queues)
            self.figures.recycled += 1
        elif not proc.stopping:
            lifetime = now - proc.started
            logger.warning(
                "worker %d for %s exited on its own after %.1fs (%s)",
                pid,
                proc.queues,
                lifetime,
                described,
            )
            self.figures.died += 1
            backoff = self.backoffs.setdefault(proc.queues, Backoff())
            backoff.died(lifetime, now)
            if backoff.delay:
                self.figures.backoffs += 1
                logger.warning(
                    "workers for %s keep dying soon after start; next one in %.0fs",
                    proc.queues,
                    backoff.delay,
                )
        killed = code not in (0, RECYCLE_EXIT_CODE)
        self.cleanups.add(proc, killed=killed, own_group=not self.single_process_group)


def excess(active: list[WorkerProcess], extra: int) -> list[WorkerProcess]:
    """The ``extra`` workers to stop: idle ones first (an autoscaled list shrinks by its
    idle workers only; a lowered count interrupts no job it need not), each kind oldest
    first as resque-pool stops them. Titles are read only when there is an excess."""
    if extra <= 0:
        return []
    return sorted(active, key=lambda proc: not idle(proc.pid))[:extra]
