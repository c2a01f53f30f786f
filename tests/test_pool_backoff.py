"""Backoff for queue lists whose workers keep dying soon after they start."""

from __future__ import annotations

from resque_pool.pool.backoff import Backoff

# -- backoff -------------------------------------------------------------------------------


def test_backoff_quick_deaths_double_to_sixteen_seconds():
    backoff = Backoff()
    delays = []
    now = 100.0
    for _ in range(8):
        backoff.died(lifetime=0.1, now=now)
        delays.append(backoff.delay)
        assert backoff.wait(now) == backoff.delay
        now += backoff.delay + 0.1
    assert delays == [0, 1, 2, 4, 8, 16, 16, 16]


def test_backoff_long_life_clears():
    backoff = Backoff()
    backoff.died(0.1, 100)
    backoff.died(0.1, 101)
    assert backoff.delay == 1
    backoff.died(60, 200)  # lived long enough: replaced at once, counter cleared
    assert backoff.delay == 0 and backoff.wait(200) == 0
    backoff.died(0.1, 201)
    assert backoff.delay == 0  # a first quick death again


def test_backoff_grows_once_per_wave_of_deaths():
    """A Redis outage kills every worker of a list at once: one wave, one doubling."""
    backoff = Backoff()
    for _worker in range(5):  # five workers started at 99.9 die at 100
        backoff.died(0.1, 100.0)
    assert (backoff.quick_deaths, backoff.delay) == (1, 0)
    for _worker in range(5):  # their replacements, started at 100.5, die at 101
        backoff.died(0.5, 101.0)
    assert (backoff.quick_deaths, backoff.delay) == (2, 1)
    backoff.died(5.0, 103.0)  # a worker of the first wave, dying late: already counted
    assert (backoff.quick_deaths, backoff.delay) == (2, 1)


def test_backoff_survivor_started_after_last_death_clears():
    backoff = Backoff()
    for now in (100, 101, 103):
        backoff.died(0.1, now)
    assert backoff.delay == 2
    backoff.survived(started=50, now=200)  # an old sibling says nothing
    assert backoff.delay == 2
    backoff.survived(started=105, now=110)  # a new one, too young yet
    assert backoff.delay == 2
    backoff.survived(started=105, now=116)
    assert backoff.delay == 0 and backoff.quick_deaths == 0
