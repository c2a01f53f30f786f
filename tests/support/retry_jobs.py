"""Jobs with retry policies, run by the pools of tests/test_scheduler_retry_pool.py
(registered there through tests/support/pool_settings.py). Each run records what
resque-retry's counter held when it started, so a test reads every attempt's view
afterwards instead of racing the pool for it."""

from __future__ import annotations

import json
import time

from resque_pool import job
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.retry import retry_key
from resque_pool.scheduler.retry import Retry

RETRY_DELAY = 2  # seconds, for RetryLater


def record_run(name: str, token: str) -> int:
    """Append ``{"counter": <the retry key's value>, "at": <epoch>}`` to
    ``<ns>:test:runs:<token>``; the run's number, from 1."""
    client = get_redis()
    run = {"counter": client.get(retry_key(name, [token])), "at": time.time()}
    return client.rpush(key("test", "runs", token), json.dumps(run))


def runs(resque, token: str) -> list[dict]:
    """The runs ``record_run`` recorded, read from the test process."""
    return [json.loads(r) for r in resque.client.lrange(resque.key("test", "runs", token), 0, -1)]


@job(queue="demo", name="RetryLater", retry=Retry(limit=2, delay=RETRY_DELAY))
def retry_later(token):
    """Fails every time: retried twice, ``RETRY_DELAY`` seconds apart, then given up."""
    record_run("RetryLater", token)
    raise RuntimeError("still broken")


@job(queue="demo", name="RetryAfterLoss", retry=Retry(limit=2))
def retry_after_loss(token):
    """Fails every time, except the second run, which sleeps until its worker is killed."""
    if record_run("RetryAfterLoss", token) == 2:
        time.sleep(60)
    raise RuntimeError("still broken")


@job(queue="demo", name="RetryChaos", retry=Retry(limit=3))
def retry_chaos(token, seconds=0.02):
    """Fails every attempt after ``seconds`` (long enough to be killed in), retried at once
    up to 3 times: each job must end as exactly one give-up entry, whatever is killed."""
    record_run("RetryChaos", token)
    time.sleep(float(seconds))
    raise RuntimeError("still broken")
