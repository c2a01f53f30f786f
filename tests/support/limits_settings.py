"""Settings for worker and pool processes started by tests/test_limits_*.py: the pool
tests' settings, the jobs of tests/support/limits_jobs.py, and limits from the environment."""

import os

import tests.support.limits_jobs  # noqa: F401  (registers the test jobs)
from tests.support.pool_settings import *  # noqa: F403


def _number(name):
    value = os.environ.get(name)
    return float(value) if value else None


RESQUE_JOB_TIMEOUT = _number("LIMITS_JOB_TIMEOUT")
RESQUE_WORKER_MAX_JOBS = (
    int(os.environ["LIMITS_MAX_JOBS"]) if os.environ.get("LIMITS_MAX_JOBS") else None
)
RESQUE_WORKER_MAX_MEMORY_MB = _number("LIMITS_MAX_MEMORY_MB")
RESQUE_WORKER_HANG_TIMEOUT = _number("LIMITS_HANG_TIMEOUT") or 60
