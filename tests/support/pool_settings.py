"""Settings for pool processes started by tests/test_pool_*.py.

The demo project's settings, plus a custom loader chosen by ``POOL_TEST_LOADER`` and an
``after_prefork`` hook (tests/support/processes.py) that makes workers of a queue list named
``crash`` die at once, for the backoff test; the jobs with retry policies of
tests/support/retry_jobs.py; the ``tests.dbjobs`` app, whose job reads the
database from a forked job child; ``POOL_TEST_REQUEUE=1`` turns on
``RESQUE_REQUEUE_DIRTY_JOBS``; the scheduler child runs only with ``POOL_TEST_SCHEDULER=1``
(the pool tests count and name the manager's children).
"""

import os

import tests.support.processes  # noqa: F401,E402  (registers the after_prefork hook)
import tests.support.retry_jobs  # noqa: F401  (jobs with retry policies)
from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.dbjobs"]

RESQUE_POOL_CONFIG_LOADER = os.environ.get("POOL_TEST_LOADER") or None
RESQUE_REQUEUE_DIRTY_JOBS = os.environ.get("POOL_TEST_REQUEUE") == "1"
RESQUE_HEARTBEAT_INTERVAL = float(os.environ.get("POOL_TEST_HEARTBEAT") or 60)
RESQUE_SCHEDULER = os.environ.get("POOL_TEST_SCHEDULER") == "1"
RESQUE_SCHEDULER_LEADER_TTL = float(os.environ.get("POOL_TEST_LEADER_TTL", "10"))
# The pool tests run without a scheduler child unless they ask for one; the Tasks backend's
# warning about that would be printed by every command they start, and they assert on
# stderr line by line.
SILENCED_SYSTEM_CHECKS = ["resque_pool.tasks.W002"]
