"""The pool's one look at Redis on behalf of its idle workers, so that an idle pool costs
Redis about the same whatever its size.

Idle workers block on their wake-up keys with no time-out (``worker/pickup.py``) and never
poll. What they would have polled for, the manager looks at once for them all:

- **our control channel** (``resque/control.py``), subscribed: a pause or resume, or a new
  queue, made through our API wakes the workers it concerns at once (``LOOK_AGAIN``, a
  local signal), which then look at Redis themselves;
- **one poll per ``INTERVAL``** for what other clients did (Ruby's ``pause-all-workers``,
  a raw ``SADD queues``, jobs pushed by Ruby or pyres, which push no wake-up token):
  ``GET pause-all-workers``, ``SMEMBERS queues`` when a list reads ``*`` or a glob, and
  ``LLEN`` of each queue the pool reads. Jobs found get wake-up tokens (one per job, for
  as many workers as read the queue); jobs still there at the next poll wake every worker
  of that queue locally, which covers a token lost with a connection;
- **the workers' heartbeats**, every ``RESQUE_HEARTBEAT_INTERVAL``: the manager knows which
  of its workers are alive and writes all their ``workers:heartbeat`` fields in one
  ``HSET`` (Resque's hash, Redis's ``TIME``), registering again any that went missing
  from ``workers`` (Redis restarted empty, a failover).

A Redis that does not answer is logged once and tried again at the next poll; the
workers, meanwhile, meet the outage themselves when they next look.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis as redis_lib

from resque_pool.conf import settings
from resque_pool.logs import LogOnce
from resque_pool.pool.processes import WorkerProcess, WorkerTable, paused, send_signal, waiting
from resque_pool.resque import control, records, wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.outages import outage
from resque_pool.resque.queue_lists import split_queues
from resque_pool.resque.queue_resolution import QueueList
from resque_pool.resque.wakeup import MAX_TOKENS, wake
from resque_pool.resque.worker_records import register
from resque_pool.unix.process import command_line
from resque_pool.worker.options import WorkerOptions
from resque_pool.worker.signal_flags import LOOK_AGAIN

logger = logging.getLogger(__name__)


def poll_interval() -> float:
    """The workers' ``INTERVAL`` (Resque's promise for what other clients push)."""
    try:
        interval = WorkerOptions.from_environment().interval
    except ValueError:
        interval = 5.0
    return max(interval, 0.5)


class IdleWatch:
    def __init__(self, workers: WorkerTable, interval: float | None = None) -> None:
        self.workers = workers
        self.interval = poll_interval() if interval is None else interval
        self.pubsub: Any = None
        self.next_poll = 0.0
        self.next_heartbeat = 0.0
        # pause-all-workers and the queues set at the last poll; before the first, what a
        # worker starting up may have seen (so the first poll wakes them on any news).
        self.paused = False
        self.queue_set: set[str] | None = None
        self.waiting: set[str] = set()  # queues that held jobs at the last poll
        self.registered: set[str] = set()  # worker ids seen in ``workers``
        self.failing = LogOnce(logger)

    # -- the manager's loop ----------------------------------------------------------------

    def fds(self) -> list[int]:
        """What the manager's sleep selects on beside its signal pipe."""
        fd = control.socket_of(self.pubsub) if self.pubsub is not None else None
        return [] if fd is None else [fd]

    def deadline(self) -> float:
        return min(self.next_poll, self.next_heartbeat)

    def tick(self) -> None:
        """Messages first (they are news now), then the poll and heartbeats when due."""
        now = time.monotonic()
        polled = now >= self.next_poll
        try:
            self.read_messages()
            if polled:
                self.next_poll = now + self.interval
                self.subscribe()
                self.poll()
            if now >= self.next_heartbeat:
                self.next_heartbeat = now + max(float(settings.RESQUE_HEARTBEAT_INTERVAL), 1.0)
                self.beat()
        except redis_lib.RedisError as error:
            self.close()  # subscribed again at the next poll
            # Once per kind of error (each refused command words it differently).
            kind = outage(error) or str(error)
            self.failing.error(kind, "could not look at Redis for idle workers: %s", error)
            return
        if polled:
            self.failing.clear("the pool's poll works again")

    def close(self) -> None:
        if self.pubsub is not None:
            pubsub, self.pubsub = self.pubsub, None
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 (a broken connection is what we drop)
                logger.debug("closing the control subscription", exc_info=True)

    # -- the control channel ----------------------------------------------------------------

    def subscribe(self) -> None:
        if self.pubsub is None:
            self.pubsub = control.subscribe()

    def read_messages(self) -> None:
        if self.pubsub is None:
            return
        news = set(control.messages(self.pubsub))
        if control.PAUSE in news:
            self.look_again(self.workers.all())
        elif control.QUEUES in news:
            self.look_again(self.dynamic_workers())

    # -- the poll ---------------------------------------------------------------------------

    def poll(self) -> None:
        lists = {text: QueueList(split_queues(text)) for text in self.workers.queue_lists()}
        dynamic = any(queue_list.dynamic for queue_list in lists.values())
        pipe = get_redis().pipeline(transaction=False)
        pipe.get(key(records.PAUSE_ALL_WORKERS))
        if dynamic:
            pipe.smembers(key("queues"))
        replies = pipe.execute()
        pause_all = records.pauses_workers(replies[0])
        queue_set = set(replies[1]) if dynamic else set()
        reads = {text: queue_list.resolve(queue_set) for text, queue_list in lists.items()}
        if pause_all != self.paused:
            self.look_again(self.workers.all())
        else:
            if not pause_all:
                # A pause and resume both made between two polls (or while Redis did not
                # answer) leave a worker that saw the pause waiting: its title says so.
                self.look_again([p for p in self.workers.all() if _paused(p.pid)])
            if dynamic and queue_set != self.queue_set:
                self.look_again(self.dynamic_workers())
        self.paused, self.queue_set = pause_all, queue_set
        if pause_all:
            self.waiting = set()
            return  # nobody takes a job while paused: nothing to wake for
        self.wake_for_jobs(reads)

    def wake_for_jobs(self, reads: dict[str, list[str]]) -> None:
        """Tokens for jobs found; a local wake-up for jobs that were already there."""
        queues = sorted({queue for names in reads.values() for queue in names})
        if not queues:
            self.waiting = set()
            return
        pipe = get_redis().pipeline(transaction=False)
        for queue in queues:
            pipe.llen(key("queue", queue))
        lengths = dict(zip(queues, pipe.execute(), strict=True))
        waiting = {queue for queue, length in lengths.items() if length}
        readers = {
            queue: [text for text, names in reads.items() if queue in names] for queue in waiting
        }
        tokens: list[str] = []
        still: list[WorkerProcess] = []
        fresh: list[WorkerProcess] = []
        for queue in sorted(waiting):
            # Only the workers waiting (their title says so; /proc, no Redis): a signal to
            # a worker in a job would only interrupt the job's system calls.
            procs = [
                proc
                for text in readers[queue]
                for proc in self.workers.active(text)
                if _waiting(proc.pid)
            ]
            if queue in self.waiting:
                still.extend(procs)
            else:
                tokens.extend([queue] * min(lengths[queue], len(procs), MAX_TOKENS))
                fresh.extend(procs)
        self.waiting = waiting
        self.look_again(still)
        if tokens:
            try:
                wake(tokens)
            except redis_lib.RedisError:
                # Refused (a Redis out of memory takes no token): wake them locally; they
                # meet the refusal themselves and wait it out, holding what they took.
                self.look_again(fresh)
                raise

    # -- waking workers ---------------------------------------------------------------------

    def dynamic_workers(self) -> list[WorkerProcess]:
        return [
            proc
            for text in self.workers.queue_lists()
            if QueueList(split_queues(text)).dynamic
            for proc in self.workers.active(text)
        ]

    @staticmethod
    def look_again(procs: list[WorkerProcess]) -> None:
        for pid in sorted({proc.pid for proc in procs}):
            send_signal(pid, LOOK_AGAIN)

    # -- heartbeats -------------------------------------------------------------------------

    def beat(self) -> None:
        """Every live worker's heartbeat in one ``HSET``; a worker seen registered before
        and missing now is registered again (as its own heartbeat did)."""
        ids = sorted({proc.id for proc in self.workers.all()})
        self.registered &= set(ids)
        if not ids:
            return
        client = get_redis()
        seconds, _micro = client.time()
        stamp = wire.heartbeat(seconds)
        pipe = client.pipeline(transaction=False)
        pipe.hset(key("workers:heartbeat"), mapping=dict.fromkeys(ids, stamp))
        pipe.smismember(key("workers"), ids)
        written, members = pipe.execute(raise_on_error=False)
        if isinstance(written, Exception):
            raise written
        if isinstance(members, Exception):  # SMISMEMBER is Redis 6.2's
            everyone = client.smembers(key("workers"))
            members = [worker_id in everyone for worker_id in ids]
        missing = []
        for worker_id, member in zip(ids, members, strict=True):
            if member:
                self.registered.add(worker_id)
            elif worker_id in self.registered:
                missing.append(worker_id)
        if missing:
            pipe = client.pipeline(transaction=False)
            for worker_id in missing:
                register(worker_id, pipe)
            pipe.execute()
            for worker_id in missing:
                logger.warning("Worker %s was missing from workers; registered again", worker_id)


def _waiting(pid: int) -> bool:
    """Whether the worker's title says it waits for jobs (or cannot be read: then wake it)."""
    title = command_line(pid)
    return title is None or waiting(title)


def _paused(pid: int) -> bool:
    title = command_line(pid)
    return title is not None and paused(title)
