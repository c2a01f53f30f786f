"""The manager's table of worker processes, per queue list, oldest first."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from resque_pool.resque.queue_lists import split_queues
from resque_pool.resque.worker_records import make_worker_id
from resque_pool.unix.process import command_line

# What an idle worker's title says (worker/loop.py, Resque's format).
WAITING = ": Waiting for "
PAUSED = ": Paused"


@dataclass
class WorkerProcess:
    pid: int
    queues: str
    started: float  # time.monotonic()
    stopping: bool = False  # the manager asked it to stop: its exit is no crash

    @property
    def id(self) -> str:
        """The Resque worker id it registers under (``host:pid:queues``)."""
        return make_worker_id(self.pid, split_queues(self.queues))


def waiting(title: str) -> bool:
    """Whether a worker's title says it waits for a job."""
    return WAITING in title


def paused(title: str) -> bool:
    """Whether a worker's title says it is paused (``pause-all-workers``)."""
    return title.rstrip(" ").endswith(PAUSED)


def idle(pid: int) -> bool:
    """Whether the worker's title says it waits for a job or is paused: stopping it
    interrupts nothing. A title that cannot be read counts as busy."""
    title = command_line(pid)
    return bool(title) and (waiting(title) or paused(title))


def send_signal(pid: int, signum: int) -> None:
    # A pid that already exited (not yet reaped, or reaped a moment ago) is harmless.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


class WorkerTable:
    """``{queues: {pid: WorkerProcess}}``; dicts keep insertion order, so within a queue list
    the oldest worker comes first (resque-pool stops ``pids_for(q)[0...n]``)."""

    def __init__(self) -> None:
        self._by_queues: dict[str, dict[int, WorkerProcess]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_queues)

    def queue_lists(self) -> list[str]:
        return list(self._by_queues)

    def of(self, queues: str) -> list[WorkerProcess]:
        return list(self._by_queues.get(queues, {}).values())

    def active(self, queues: str) -> list[WorkerProcess]:
        return [proc for proc in self.of(queues) if not proc.stopping]

    def busy(self, queues: str) -> int:
        """How many of the list's active workers are not idle (``idle``: their titles)."""
        return sum(1 for proc in self.active(queues) if not idle(proc.pid))

    def add(self, proc: WorkerProcess) -> None:
        self._by_queues.setdefault(proc.queues, {})[proc.pid] = proc

    def remove(self, pid: int) -> WorkerProcess | None:
        for queues, procs in self._by_queues.items():
            if pid in procs:
                proc = procs.pop(pid)
                if not procs:
                    del self._by_queues[queues]
                return proc
        return None

    def all(self) -> list[WorkerProcess]:
        return [proc for procs in self._by_queues.values() for proc in procs.values()]

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.all()]

    def pids_by_queues(self) -> dict[str, list[int]]:
        return {queues: list(procs) for queues, procs in self._by_queues.items()}

    def signal_all(self, signum: int, stopping: bool = True) -> None:
        for proc in self.all():
            if stopping:
                proc.stopping = True
            send_signal(proc.pid, signum)

    def complete(self, desired: dict[str, int]) -> bool:
        """Every queue list runs at least its desired number of workers not stopping."""
        return all(len(self.active(queues)) >= want for queues, want in desired.items())
