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

Time is Redis's ``TIME`` (``clock.py``), for every scheduler. A stored slot or last run
further ahead of that clock than one period of its schedule (written by a scheduler whose
clock was wrong, a Ruby one or an older version of ours) is damaged: it is ignored, logged
once, and the schedule counts its next run from now.

Errors are per schedule: one whose next run cannot be computed (an absurd interval on an
old row, a broken hook) is logged once with its name, recorded in
``<ns>:resque_pool:schedule_errors`` for the admin to show on its row, and the others fire
on time.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis as redis_lib

from resque_pool.conf import settings
from resque_pool.config_error import one_line
from resque_pool.logs import LogOnce
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.producer import enqueue
from resque_pool.resque.registry import registry
from resque_pool.resque.wakeup import wake_quietly
from resque_pool.scheduler import clock
from resque_pool.scheduler.models import Schedule
from resque_pool.scheduler.timing import ScheduleError

logger = logging.getLogger(__name__)

LAST_ENQUEUED_AT = "delayed:last_enqueued_at"
SLOTS = "resque_pool:schedule_slots"
LEADER = "resque_pool:scheduler_leader"
ERRORS = "resque_pool:schedule_errors"

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

# KEYS: leader, a hash (slots or errors); ARGV: me, field, value ("" deletes the field).
# Only the leader writes our bookkeeping, so a stalled former leader cannot undo its
# successor's.
_SET_IF_LEADER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then return redis.call('HDEL', KEYS[2], ARGV[2]) end
return redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
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

    @property
    def refresh_period(self) -> float:
        """How often the lock is refreshed (or, by a scheduler that does not lead, tried):
        three times within its expiry, so a leader survives a missed refresh or two."""
        return self.ttl_ms / 1000 / 3

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


def last_runs(raw: dict[str, str] | None = None) -> dict[str, datetime]:
    """Schedule name -> last run, from ``delayed:last_enqueued_at`` (Ruby's or ours);
    unreadable values are left out."""
    if raw is None:
        raw = get_redis().hgetall(key(LAST_ENQUEUED_AT))
    found = {}
    for name, text in raw.items():
        parsed = wire.parse_time(text)
        if parsed is not None:
            found[name] = parsed
    return found


def slots(raw: dict[str, str] | None = None) -> dict[str, int]:
    """Schedule name -> the last slot handled (fired, skipped or cancelled), epoch seconds;
    a value that is not a whole number is left out (and so recomputed)."""
    if raw is None:
        raw = get_redis().hgetall(key(SLOTS))
    found = {}
    for name, value in raw.items():
        try:
            found[name] = int(value)
        except ValueError:
            continue
    return found


def schedule_errors() -> dict[str, str]:
    """Schedule name -> why the leader could not handle it, as last recorded."""
    return get_redis().hgetall(key(ERRORS))


@dataclass
class RunsState:
    """What Redis says about every schedule's runs, read in one round trip."""

    now: datetime
    lasts: dict[str, datetime]
    slots: dict[str, int]
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, now: float | None = None) -> RunsState:
        pipe = get_redis().pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(key(LAST_ENQUEUED_AT))
        pipe.hgetall(key(SLOTS))
        pipe.hgetall(key(ERRORS))
        server, lasts, handled, errors = pipe.execute()
        moment = now if now is not None else clock.seconds(server)
        return cls(datetime.fromtimestamp(moment, UTC), last_runs(lasts), slots(handled), errors)


def base_time(schedule: Schedule, last: datetime | None, slot: int | None) -> datetime:
    """Runs are counted from the latest of: the last run, the last slot handled, the last
    edit (an edit or a new schedule never catches up on the past)."""
    candidates = [schedule.updated_at]
    if last is not None:
        candidates.append(last)
    if slot is not None:
        candidates.append(datetime.fromtimestamp(slot, UTC))
    return max(candidates)


def period(schedule: Schedule, moment: datetime) -> timedelta:
    """The time between the schedule's next two runs after ``moment``."""
    first = schedule.next_run(moment)
    return schedule.next_run(first) - first


@dataclass
class Base:
    """Where a schedule's runs are counted from, and what was found damaged on the way."""

    time: datetime
    damaged: list[str]
    # The slot to record because the stored one is missing or damaged (None: keep it).
    new_slot: int | None = None


def checked_base(
    schedule: Schedule, last: datetime | None, slot: int | None, now: datetime
) -> Base:
    """``base_time`` without stored values further ahead of ``now`` than one period: such
    a value was written on a wrong clock, and trusting it would silence the schedule until
    then. A damaged value is left out, and when that leaves no usable slot, ``now`` is the
    slot (recorded by the leader): the next run is the schedule's first after now, and the
    next loops count from that same moment."""
    limit = now + period(schedule, now)
    damaged = []
    if last is not None and last > limit:
        damaged.append(f"last run {last.isoformat()}")
        last = None
    slot_damaged = slot is not None and slot > limit.timestamp()
    if slot_damaged:
        try:
            shown = datetime.fromtimestamp(slot, UTC).isoformat()
        except (OverflowError, ValueError, OSError):
            shown = str(slot)[:24]
        damaged.append(f"slot {shown}")
    new_slot = None
    if damaged and (slot is None or slot_damaged):
        slot = new_slot = int(now.timestamp())
    return Base(base_time(schedule, last, slot), damaged, new_slot)


def next_run(schedule: Schedule, state: RunsState) -> datetime:
    """The schedule's next run as the leader counts it (damaged values ignored)."""
    base = checked_base(
        schedule, state.lasts.get(schedule.name), state.slots.get(schedule.name), state.now
    )
    return schedule.next_run(base.time)


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


def describe(error: Exception) -> str:
    """One line for a schedule's error: our own errors as they are, others with their type."""
    if isinstance(error, ScheduleError):
        return str(error)
    return one_line(error)


class Recurring:
    """Called once per scheduler loop: lead, read the schedules, fire what is due."""

    def __init__(self) -> None:
        self.leadership = Leadership()
        self.next_hold = 0.0  # time.monotonic() of the next refresh of the lock
        # What the last look saw: the enabled schedules' rows, and the next run among them
        # (seconds, Redis's clock); None until a look as the leader.
        self.seen: tuple = ()
        self.next_due: float | None = None
        # Per schedule, so that two broken schedules do not take turns at the log: each
        # error is logged once, with the schedule's name, until it changes or clears.
        self.errors: dict[str, LogOnce] = {}
        self.damage: dict[str, LogOnce] = {}

    def tick(self, now: float | None = None, estimate: float | None = None) -> int:
        """Fire what is due at ``now`` (default: Redis's clock); the number of runs pushed.

        With ``estimate`` (Redis's clock as the scheduler reckons it, without asking), an
        idle leader talks to Redis only when a run is due, the schedules changed in the
        database, or the lock needs refreshing; ``now`` given always looks."""
        looking = now is not None or estimate is None
        moment = time.monotonic()
        if looking or moment >= self.next_hold:
            held = self.leadership.hold()  # on an error, tried again at the next tick
            self.next_hold = moment + self.leadership.refresh_period
            if not held:
                self.next_due = None
                return 0
        elif not self.leadership.leading:
            return 0
        schedules = list(Schedule.objects.filter(enabled=True))
        seen = tuple(tuple(getattr(row, f.attname) for f in row._meta.fields) for row in schedules)
        unchanged = seen == self.seen and self.next_due is not None
        if not looking and unchanged and estimate < self.next_due:  # type: ignore[operator]
            return 0
        state = RunsState.read(now)
        self.forget(state, {schedule.name for schedule in schedules})
        fired = 0
        for schedule in schedules:
            try:
                fired += self.step(schedule, state)
            except redis_lib.RedisError:
                raise  # Redis is down for every schedule: the loop logs it once
            except Exception as error:  # noqa: BLE001 (this schedule's alone)
                self.report(schedule.name, describe(error), state)
            else:
                self.cleared(schedule.name, state)
        self.seen = seen
        self.next_due = self.earliest_due(schedules, state)
        return fired

    def earliest_due(self, schedules: list[Schedule], state: RunsState) -> float | None:
        """When the next run of any schedule falls (seconds, Redis's clock): the leader
        sleeps until then. Recomputed within the refresh period at the latest (a schedule
        whose next run cannot be computed counts as due then)."""
        latest = state.now.timestamp() + self.leadership.refresh_period
        found = [latest]
        for schedule in schedules:
            try:
                found.append(next_run(schedule, state).timestamp())
            except Exception:  # noqa: BLE001 (reported by step(), retried at the refresh)
                continue
        return min(found)

    def step(self, schedule: Schedule, state: RunsState) -> int:
        """Fire ``schedule`` if it is due; 1 when a run was pushed."""
        moment = state.now
        try:
            base = checked_base(
                schedule, state.lasts.get(schedule.name), state.slots.get(schedule.name), moment
            )
            if base.damaged:
                self.repair(schedule, base, moment)
            elif schedule.name in self.damage:
                del self.damage[schedule.name]  # the next run overwrote it
            due = schedule.next_run(base.time)
            if due > moment:
                return 0
            slot = latest_due(schedule, due, moment)
        except (ScheduleError, redis_lib.RedisError):
            raise
        except Exception as error:  # noqa: BLE001 (reworded for the log and the admin)
            raise ScheduleError(f"cannot compute its next run: {describe(error)}") from None
        fired = self.fire(schedule, slot, moment)
        state.slots[schedule.name] = slot  # as the script recorded it: counted from there
        return fired

    def repair(self, schedule: Schedule, base: Base, moment: datetime) -> None:
        """Log a damaged slot or last run once, and record ``moment`` as the schedule's slot
        (only when it has no usable one), so that later loops count from it."""
        text = ", ".join(base.damaged)
        log = self.damage.setdefault(schedule.name, LogOnce(logger, logging.WARNING))
        log.error(
            text,
            "schedule %s: stored %s is ahead of Redis's clock (%s) by more than one period "
            "(written on a wrong clock?); ignored, runs are counted without it",
            schedule.name,
            text,
            moment.isoformat(),
        )
        if base.new_slot is not None:
            self._set(SLOTS, schedule.name, str(base.new_slot))

    def _set(self, hash_name: str, field_name: str, value: str) -> None:
        get_redis().register_script(_SET_IF_LEADER)(
            keys=[key(LEADER), key(hash_name)], args=[self.leadership.me, field_name, value]
        )

    def fire(self, schedule: Schedule, slot: int, moment: datetime) -> int:
        """Push one run of ``schedule`` due at ``slot``; 1 when pushed."""
        definition = registry.get(schedule.job_name)
        queue = schedule.queue or (definition.queue if definition else "")
        if not queue:
            raise ScheduleError(f"job {schedule.job_name!r} has no queue here")
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
            self.next_hold = 0.0
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

    def report(self, name: str, message: str, state: RunsState | None = None) -> None:
        """This schedule's error: logged once with its name, recorded for the admin."""
        log = self.errors.setdefault(name, LogOnce(logger))
        log.error(message, "schedule %s: %s", name, message)
        if state is not None and state.errors.get(name) != message:
            self._set(ERRORS, name, message)
            state.errors[name] = message

    def cleared(self, name: str, state: RunsState) -> None:
        log = self.errors.get(name)
        if log is not None:
            log.clear("schedule %s works again", name)
        if name in state.errors:
            self._set(ERRORS, name, "")
            del state.errors[name]

    def forget(self, state: RunsState, names: Iterable[str]) -> None:
        """Drop what is kept about schedules that are gone or disabled."""
        names = set(names)
        for gone in [name for name in state.errors if name not in names]:
            self._set(ERRORS, gone, "")
            del state.errors[gone]
        for kept in (self.errors, self.damage):
            for gone in [name for name in kept if name not in names]:
                del kept[gone]

    def stop(self) -> None:
        try:
            self.leadership.release()
        except Exception as error:  # noqa: BLE001 (Redis down: the lock expires by itself)
            logger.warning("could not release the leader lock: %s", error)


def run_now(schedule: Schedule) -> str:
    """The admin's "run now": push the job at once (like resque-web's "Queue now", which
    does not count as a scheduled run). Returns the queue."""
    pushed = enqueue(schedule.job_name, *(schedule.args or []), queue=schedule.queue or None)
    return pushed.queue if pushed else ""
