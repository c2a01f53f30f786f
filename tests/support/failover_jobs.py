"""The job of the failover tests (tests/test_redis_failover.py), registered in the test
process and, through tests/support/failover_settings.py, in the pools they start."""

from __future__ import annotations

import os
import time

import redis

from resque_pool import job
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.outages import is_unavailable


@job(queue="demo", name="FailoverRecord")
class FailoverRecord:
    """Sleeps, appends ``<token> <epoch seconds>`` to the file ``FAILOVER_RUNS`` names (one
    line per run, outside Redis: what a failover cannot take back), then adds the token to
    ``<ns>:demo:done``, waiting out an outage as a careful job would."""

    @staticmethod
    def perform(token, seconds=0.0):
        time.sleep(float(seconds))
        line = f"{token} {time.time():.3f}\n".encode()
        descriptor = os.open(os.environ["FAILOVER_RUNS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(descriptor, line)  # one write on O_APPEND: lines never interleave
        finally:
            os.close(descriptor)
        deadline = time.monotonic() + 60
        while True:
            try:
                get_redis().sadd(key("demo", "done"), str(token))
                return
            except redis.RedisError as error:
                if not is_unavailable(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
