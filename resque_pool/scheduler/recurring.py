"""Firing recurring schedules: one leader among our schedulers, runs fenced by its lock.

The leader lock is ours (``<ns>:resque_pool:scheduler_leader``, value ``host:pid``), not
resque-scheduler's master lock, whose holder fires only its own Ruby schedules. It is
taken with ``SET NX PX``, refreshed every loop (only by its holder), expires after
``RESQUE_SCHEDULER_LEADER_TTL`` seconds when the holder dies, and is released on a clean
exit, so another scheduler takes over within seconds.

Each run is one script that checks the lock is still ours before it pushes the job and
records the run, so a leader that stalled past its expiry cannot fire a run its successor
fires too. A run is recorded as resque-scheduler records it (``HSET
delayed:last_enqueued_at <name> <Time#to_s>``) and, for our own bookkeeping, the slot it
was due at in ``<ns>:resque_pool:schedule_slots``.

Missed runs: runs missed while no scheduler led (or while the leader changed) are
coalesced into one run, fired as soon as a scheduler leads again; resque-scheduler skips
them instead. A daily job that missed its slot during a deploy still runs once, never
several times. Editing or enabling a schedule starts it afresh: runs before the edit are
not caught up.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from resque_pool.conf import settings
from resque_pool.logs import LogOnce
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.jobs import registry
from resque_pool.resque.wakeup import wake_quietly

if TYPE_CHECKING:
    # Only for the hints: at run time tick() imports the model where it queries it.
    from resque_pool.scheduler.models import Schedule

logger = logging.getLogger(__name__)

LAST_ENQUEUED_AT = "delayed:last_enqueued_at"
SLOTS = "resque_pool:schedule_slots"
LEADER = "resque_pool:scheduler_leader"

# KEYS: leader; ARGV: me, ttl ms.  1 when we hold the lock (refreshed or newly taken).
_HOLD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: leader, queues, queue:<q>, delayed:last_enqueued_at, schedule_slots
# ARGV: me, queue, payload, name, Time#to_s, slot, mode: "push", "skip-if-queued" or
# "record" (a before_enqueue hook cancelled the run: the slot is handled, nothing pushed).
# Returns 1 pushed, 2 not pushed, 0 not the leader (nothing written).
_FIRE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[5], ARGV[4], ARGV[6])
if ARGV[7] == 'record' then return 2 end
if ARGV[7] == 'skip-if-queued' and redis.call('LPOS', KEYS[3], ARGV[3]) then return 2 end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
return 1
"""


def leader_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def current_leader() -> str | None:
    return get_redis().get(key(LEADER))


class Leadership:
    """This process's claim on the leader lock."""

    def __init__(self) -> None:
        self.me = leader_id()
        self.leading = False

    @property
    def ttl_ms(self) -> int:
        return max(int(float(settings.RESQUE_SCHEDULER_LEADER_TTL) * 1000), 1000)

    def hold(self) -> bool:
        """Take the lock if it is free, or refresh it if ours; True while we lead."""
        script = get_redis().register_script(_HOLD)
        held = bool(script(keys=[key(LEADER)], args=[self.me, self.ttl_ms]))
        if held != self.leading:
            logger.info(
                "scheduler %s %s",
                self.me,
                "now leads recurring schedules" if held else "no longer leads",
            )
        self.leading = held
        return held

    def release(self) -> None:
        if self.leading:
            get_redis().register_script(_RELEASE)(keys=[key(LEADER)], args=[self.me])
            self.leading = False
            logger.info("scheduler %s released the leader lock", self.me)


def last_runs() -> dict[str, datetime]:
    """Schedule name -> last run, from ``delayed:last_enqueued_at`` (Ruby's or ours)."""
    found = {}
    for name, text in get_redis().hgetall(key(LAST_ENQUEUED_AT)).items():
        parsed = wire.parse_time(text)
        if parsed is not None:
            found[name] = parsed
    return found


def slots() -> dict[str, int]:
    """Schedule name -> the last slot handled (fired, skipped or cancelled), epoch seconds."""
    return {name: int(value) for name, value in get_redis().hgetall(key(SLOTS)).items()}


def base_time(schedule: Schedule, last: datetime | None, slot: int | None) -> datetime:
    """Runs are counted from the latest of: the last run, the last slot handled, the last
    edit (an edit or a new schedule never catches up on the past)."""
    candidates = [schedule.updated_at]
    if last is not None:
        candidates.append(last)
    if slot is not None:
        candidates.append(datetime.fromtimestamp(slot, UTC))
    return max(candidates)


def start_at(schedule: Schedule, first: datetime) -> None:
    """Make the next run of an interval schedule fall at ``first`` (rufus' ``first_in`` /
    ``first_at``, from ``load_resque_schedule``). Runs are counted from the latest of the
    last edit, the last run and the last slot (``base_time``), so the edit is recorded one
    interval before ``first`` (the same column: no migration) and the slot is forgotten. A
    run recorded in ``delayed:last_enqueued_at`` later than that still counts: the first run
    then comes one interval after it, never sooner."""
    start = first - timedelta(seconds=int(schedule.interval or 0))
    type(schedule).objects.filter(pk=schedule.pk).update(updated_at=start)
    schedule.updated_at = start
    get_redis().hdel(key(SLOTS), schedule.name)


def latest_due(schedule: Schedule, due: datetime, moment: datetime, limit: int = 1000) -> int:
    """The last slot not after ``moment``, starting from the first one due: missed runs
    are coalesced into one run, recorded at the latest missed slot."""
    latest = due
    for _ in range(limit):
        following = schedule.next_run(latest)
        if following > moment:
            break
        latest = following
    else:  # a very long gap on a very frequent schedule: count from now
        latest = moment
    return int(latest.timestamp())


class Recurring:
    """Called once per scheduler loop: lead, read the schedules, fire what is due."""

    def __init__(self) -> None:
        self.leadership = Leadership()
        # A schedule that cannot fire says so once, not every second, until another does.
        self.errors = LogOnce(logger)

    def tick(self, now: float | None = None) -> int:
        if not self.leadership.hold():
            return 0
        from resque_pool.scheduler.models import Schedule

        schedules = list(Schedule.objects.filter(enabled=True))
        if not schedules:
            return 0
        moment = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
        lasts = last_runs()
        handled = slots()
        fired = 0
        for schedule in schedules:
            try:
                due = schedule.next_run(
                    base_time(schedule, lasts.get(schedule.name), handled.get(schedule.name))
                )
            except ValueError as error:
                self.report(schedule.name, str(error))
                continue
            if due <= moment:
                fired += self.fire(schedule, latest_due(schedule, due, moment), moment)
        return fired

    def fire(self, schedule: Schedule, slot: int, moment: datetime) -> int:
        """Push one run of ``schedule`` due at ``slot``; 1 when pushed."""
        definition = registry.get(schedule.job_name)
        queue = schedule.queue or (definition.queue if definition else "")
        if not queue:
            self.report(schedule.name, f"job {schedule.job_name!r} has no queue here")
            return 0
        args = list(schedule.args) if isinstance(schedule.args, list) else []
        payload = wire.job_payload(schedule.job_name, args)
        mode = "skip-if-queued" if schedule.skip_if_queued else "push"
        if definition is not None:
            # Resque's enqueue: every before hook runs, any False cancels this run.
            results = [hook(*args) for hook in definition.hooks("before_enqueue")]
            if any(result is False for result in results):
                mode = "record"
        result = get_redis().register_script(_FIRE)(
            keys=[
                key(LEADER),
                key("queues"),
                key("queue", queue),
                key(LAST_ENQUEUED_AT),
                key(SLOTS),
            ],
            args=[
                self.leadership.me,
                queue,
                payload,
                schedule.name,
                wire.started_at(moment),
                slot,
                mode,
            ],
        )
        if result == 0:
            self.leadership.leading = False  # the lock expired under us: the next loop retries
            return 0
        if result == 2:
            reason = (
                "cancelled by a before_enqueue hook"
                if mode == "record"
                else "skipped: the previous run is still queued"
            )
            logger.info("schedule %s: %s", schedule.name, reason)
            return 0
        logger.info("schedule %s: queued %s on %s", schedule.name, payload, queue)
        wake_quietly([queue])
        if definition is not None:
            for hook in definition.hooks("after_enqueue"):
                hook(*args)
        return 1

    def report(self, name: str, message: str) -> None:
        text = f"schedule {name}: {message}"
        self.errors.error(text, "%s", text)

    def stop(self) -> None:
        try:
            self.leadership.release()
        except Exception as error:  # noqa: BLE001 (Redis down: the lock expires by itself)
            logger.warning("could not release the leader lock: %s", error)


def run_now(schedule: Schedule) -> str:
    """The admin's "run now": push the job at once (like resque-web's "Queue now", which
    does not count as a scheduled run). Returns the queue."""
    from resque_pool.resque.jobs import enqueue

    pushed = enqueue(schedule.job_name, *(schedule.args or []), queue=schedule.queue or None)
    return pushed.queue if pushed else ""
