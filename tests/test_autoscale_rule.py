"""The autoscaling rule (resque_pool/capacity/autoscale.py), on a clock the test moves:
up at once to busy + backlog within the bounds, down only after a whole cooldown of lower
need and only to the most needed meanwhile, backlog shared between pools, bounds moved
by a reload applied at once."""

from __future__ import annotations

import pytest

from resque_pool.capacity.autoscale import Autoscaler, Reading


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def scaler(clock: Clock, latency: float = 0.0, cooldown: float = 30.0) -> Autoscaler:
    autoscaler = Autoscaler(latency, cooldown, clock=clock, wall=lambda: 1_800_000_000.0)
    autoscaler.set_bounds({"high,low": 1, "mail": 2}, {"high,low": 8})
    return autoscaler


def test_a_list_starts_at_its_floor_and_fixed_lists_keep_their_count(clock):
    autoscaler = scaler(clock)
    assert autoscaler.sized({"high,low": 1, "mail": 2}) == {"high,low": 1, "mail": 2}
    assert autoscaler.state() == {
        "high,low": {"floor": 1, "max": 8, "target": 1, "decision": None, "ups": 0, "downs": 0}
    }


def test_a_burst_grows_the_list_at_once_to_its_maximum(clock):
    autoscaler = scaler(clock)
    decision = autoscaler.observe("high,low", Reading(backlog=1000, waited=0, busy=1))
    assert (decision.before, decision.after) == (1, 8)
    assert decision.reason == "1000 jobs waiting, the oldest 0s, 1 busy, capped at the maximum 8"
    assert autoscaler.sized({"high,low": 1, "mail": 2}) == {"high,low": 8, "mail": 2}
    assert autoscaler.state()["high,low"]["decision"] == {
        "at": "2027-01-15T08:00:00+00:00",
        "from": 1,
        "to": 8,
        "reason": decision.reason,
    }


def test_jobs_that_idle_workers_can_take_grow_nothing(clock):
    autoscaler = scaler(clock)
    autoscaler.observe("high,low", Reading(backlog=3, waited=0, busy=1))
    assert autoscaler.lists["high,low"].target == 4
    # Two more jobs while two of the four are idle: busy 2 + 2 waiting = 4, as now.
    assert autoscaler.observe("high,low", Reading(backlog=2, waited=5, busy=2)) is None
    assert autoscaler.lists["high,low"].target == 4


def test_the_target_latency_holds_growth_until_the_oldest_job_waited_that_long(clock):
    autoscaler = scaler(clock, latency=10)
    assert autoscaler.observe("high,low", Reading(backlog=5, waited=9.5, busy=1)) is None
    decision = autoscaler.observe("high,low", Reading(backlog=5, waited=10, busy=1))
    assert decision.after == 6


def test_it_shrinks_only_after_a_whole_cooldown_to_the_most_needed_meanwhile(clock):
    autoscaler = scaler(clock, cooldown=30)
    autoscaler.observe("high,low", Reading(backlog=100, waited=0, busy=1))
    clock.now += 40
    # The burst is over: 3 still busy. The cooldown starts now, not at the last change.
    assert autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=3)) is None
    clock.now += 20
    assert autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=5)) is None
    clock.now += 10
    decision = autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=0))
    assert (decision.before, decision.after) == (8, 5)  # the peak of the quiet half minute
    assert decision.reason == "needed at most 5 for 30s (0 busy, 0 waiting)"
    clock.now += 30
    assert autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=0)) is None
    clock.now += 30
    assert autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=0)).after == 1


def test_a_need_back_at_the_target_restarts_the_cooldown(clock):
    autoscaler = scaler(clock, cooldown=30)
    autoscaler.observe("high,low", Reading(backlog=3, waited=0, busy=1))  # target 4
    clock.now += 60
    autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=1))
    clock.now += 25
    autoscaler.observe("high,low", Reading(backlog=3, waited=0, busy=1))  # 4 again
    clock.now += 25
    assert autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=0)) is None
    assert autoscaler.lists["high,low"].target == 4


def test_it_never_shrinks_below_the_busy_workers(clock):
    autoscaler = scaler(clock, cooldown=0)
    autoscaler.observe("high,low", Reading(backlog=7, waited=0, busy=1))  # 8
    decision = autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=6))
    assert decision.after == 6


def test_pools_that_autoscale_one_list_share_its_backlog(clock):
    autoscaler = scaler(clock)
    decision = autoscaler.observe("high,low", Reading(backlog=9, waited=2, busy=1, pools=3))
    assert decision.after == 4  # 1 busy + 9 / 3
    assert "(a 1/3 share)" in decision.reason


def test_bounds_moved_by_a_reload_move_the_target_at_once(clock):
    autoscaler = scaler(clock)
    autoscaler.observe("high,low", Reading(backlog=100, waited=0, busy=1))  # 8
    decisions = autoscaler.set_bounds({"high,low": 1}, {"high,low": 3})
    assert [(queues, d.before, d.after, d.reason) for queues, d in decisions] == [
        ("high,low", 8, 3, "bounds are now 1..3")
    ]
    decisions = autoscaler.set_bounds({"high,low": 5}, {"high,low": 6})
    assert [(d.before, d.after) for _q, d in decisions] == [(3, 5)]


def test_a_list_no_longer_autoscaled_runs_its_count(clock):
    autoscaler = scaler(clock)
    autoscaler.observe("high,low", Reading(backlog=100, waited=0, busy=1))
    autoscaler.set_bounds({"high,low": 2}, {})
    assert autoscaler.sized({"high,low": 2}) == {"high,low": 2}
    assert autoscaler.state() == {}


def test_a_maximum_below_a_new_floor_is_the_floor(clock):
    autoscaler = scaler(clock)
    autoscaler.set_bounds({"high,low": 4}, {"high,low": 3})  # the last good maximum
    assert autoscaler.sized({"high,low": 4}) == {"high,low": 4}
    assert autoscaler.observe("high,low", Reading(backlog=50, waited=0, busy=4)) is None


def test_a_look_that_catches_a_bursts_last_jobs_does_not_hold_them_a_second_cooldown(clock):
    # bench/autoscale.py once saw 8 -> 5 -> 1 over two cooldowns: the look that opened the
    # quiet spell found the queue empty and 5 workers finishing the last jobs.
    autoscaler = scaler(clock, cooldown=10)
    autoscaler.observe("high,low", Reading(backlog=1000, waited=0, busy=1))  # 8
    clock.now += 20
    assert autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=5)) is None
    for _ in range(5):  # looks every 2 s, every worker idle
        clock.now += 2
        decision = autoscaler.observe("high,low", Reading(backlog=0, waited=0, busy=0))
    assert (decision.before, decision.after) == (8, 1)  # straight to the floor
    assert decision.reason == "needed at most 1 for 10s (0 busy, 0 waiting)"
