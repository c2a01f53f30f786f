"""Settings for the processes the tests start (pools, workers, schedulers): the demo
project's settings, plus

- the ``tests.dbjobs`` app, whose job reads the database from a forked job child;
- the jobs of tests/support/limits_jobs.py and tests/support/retry_jobs.py, and the
  ``after_prefork`` hooks and ``SlowRecord`` job of tests/support/processes.py (a worker of
  a queue list named ``crash`` dies at once, for the backoff tests);
- no scheduler child unless a test asks for one (the pool tests count and name the
  manager's children);
- the ``TEST_*`` settings below, read by the loaders and hooks of tests/support/processes.py.

A test changes any of them for its processes with ``settings={...}`` (``start_pool``,
``busy_pool``, ``spawn_manage``, ``run_manage``) or the ``process_settings`` fixture, which
write a module of the test's own that imports this one: no environment variables.
"""

import tests.support.limits_jobs  # noqa: F401  (registers the limits tests' jobs)
import tests.support.processes  # noqa: F401  (registers the after_prefork hooks)
import tests.support.retry_jobs  # noqa: F401  (jobs with retry policies)
from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.dbjobs"]

RESQUE_HEARTBEAT_INTERVAL = 60.0
RESQUE_SCHEDULER = False
RESQUE_SCHEDULER_LEADER_TTL = 10.0
# The pool tests run without a scheduler child unless they ask for one; the Tasks backend's
# warning about that would be printed by every command they start, and they assert on
# stderr line by line.
SILENCED_SYSTEM_CHECKS = ["resque_pool.tasks.W002"]

# tests/support/processes.py's ReversingLoader: the file its count is read from.
TEST_COUNT_FILE = None
# tests/support/processes.py's LimitingLoader: its counts, the limits it gives every list,
# and a file it appends "limits()" to on each limits() call (None: no such file).
TEST_LOADER_LISTS = {"demo": 1}
TEST_LOADER_LIMITS = {}
TEST_LOADER_LIMITS_CALLS = None
# True: each worker's after_prefork hook adds "<pid> <worker id>" to <namespace>:test:prefork.
TEST_RECORD_PREFORK = False
# Seconds each worker's after_prefork hook sleeps (a slow start), after adding its pid to
# <namespace>:test:starting.
TEST_PREFORK_SECONDS = 0
