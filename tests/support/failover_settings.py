"""Settings for the pools of tests/test_redis_failover.py: the pool tests' settings (the
Sentinel variables come from the environment through testproject/settings.py) plus the
failover job."""

import tests.support.failover_jobs  # noqa: F401  (registers FailoverRecord)
from tests.support.pool_settings import *  # noqa: F403
