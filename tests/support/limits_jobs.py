"""Jobs for the limits tests (tests/test_limits_*.py), registered in the test process and,
through tests/support/pool_settings.py, in the workers those tests start."""

from __future__ import annotations

import time

from resque_pool import job
from resque_pool.errors import JobTimeout
from resque_pool.resque.connection import get_redis, key

# Memory a Grow job keeps alive in its process (in-process mode: the worker's own).
_kept: list[bytes] = []


@job(queue="demo", name="LimitedSleep", timeout=1)
class LimitedSleep:
    @staticmethod
    def perform(seconds):
        time.sleep(float(seconds))


@job(queue="demo", name="StubbornSleep", timeout=1)
class StubbornSleep:
    """Swallows its JobTimeout and sleeps on: only the parent's KILL ends it."""

    @staticmethod
    def perform(seconds):
        try:
            time.sleep(float(seconds))
        except JobTimeout:
            get_redis().sadd(key("limits", "swallowed"), "1")
            time.sleep(float(seconds))


@job(queue="demo", name="SleepFirstTime")
class SleepFirstTime:
    """Sleeps on its first run only (long enough to be lost mid-job), then records its token
    in ``<ns>:limits:done``; ``<ns>:limits:runs:<token>`` counts its runs."""

    @staticmethod
    def perform(token, seconds):
        if get_redis().incr(key("limits", "runs", str(token))) == 1:
            time.sleep(float(seconds))
        get_redis().sadd(key("limits", "done"), str(token))


@job(queue="demo", name="Grow")
class Grow:
    @staticmethod
    def perform(megabytes, token):
        _kept.append(b"x" * int(megabytes * 1048576))
        get_redis().sadd(key("limits", "done"), str(token))
