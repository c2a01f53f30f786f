"""Hang detection: a pool worker whose main loop stops reporting progress through its local
progress file (SIGSTOPped) is killed and replaced after RESQUE_WORKER_HANG_TIMEOUT, its job
handled by the loss policy; a Redis outage never makes workers look hung."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from resque_pool import enqueue
from tests.support.common import wait_until
from tests.support.pool_fixtures import write
from tests.test_redis_outage import Server

HANG_TIMEOUT = {"RESQUE_WORKER_HANG_TIMEOUT": 2}
TIMEOUT = 60.0


def failures(resque) -> list[dict]:
    return [json.loads(raw) for raw in resque.client.lrange(resque.key("failed"), 0, -1)]


def test_a_stopped_idle_worker_is_killed_and_replaced(resque, start_pool, tmp_path):
    pool = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 1\n")), settings=HANG_TIMEOUT)
    [stuck] = pool.wait_for_workers({"demo": 1})
    os.kill(stuck, signal.SIGSTOP)
    pool.wait_for_log(rf"worker {stuck} made no progress for \d+s", timeout=TIMEOUT)
    # The log line comes just before the KILL: until it lands the stopped worker is still
    # listed, waiting as its title says (a loaded machine once showed exactly that).
    wait_until(lambda: stuck not in pool.workers(), TIMEOUT, 0.1, "the stuck worker reaped")
    workers = pool.wait_for_workers({"demo": 1}, timeout=TIMEOUT)
    assert stuck not in workers
    wait_until(
        lambda: not any(f":{stuck}:" in w for w in resque.client.smembers(resque.key("workers"))),
        timeout=TIMEOUT,
        message="the stuck worker unregistered",
    )
    # The replacement works.
    enqueue("Record", "after")
    wait_until(
        lambda: resque.client.smembers(resque.key("demo", "done")) == {"after"},
        timeout=TIMEOUT,
        message="a job done by the replacement",
    )


def test_a_stopped_busy_workers_job_follows_the_loss_policy(resque, start_pool, tmp_path):
    settings = {**HANG_TIMEOUT, "RESQUE_REQUEUE_DIRTY_JOBS": True}
    pool = start_pool("-c", str(write(tmp_path / "pool.yml", "demo: 1\n")), settings=settings)
    [stuck] = pool.wait_for_workers({"demo": 1})
    enqueue("SlowRecord", "slow", 5)
    stuck_id = wait_until(
        lambda: next(
            (
                w
                for w in resque.client.smembers(resque.key("workers"))
                if resque.client.get(resque.key("worker", w))
            ),
            None,
        ),
        timeout=TIMEOUT,
        message="the job in flight",
    )
    assert f":{stuck}:" in stuck_id
    os.kill(stuck, signal.SIGSTOP)
    pool.wait_for_log(rf"worker {stuck} made no progress", timeout=TIMEOUT)
    # Requeued (its job child was killed with the worker's group) and done by the next one.
    wait_until(
        lambda: resque.client.smembers(resque.key("demo", "done")) == {"slow"},
        timeout=TIMEOUT,
        message=lambda: f"the requeued job done (log:\n{pool.log()})",
    )
    assert failures(resque) == []
    assert not resque.client.exists(resque.key("worker", stuck_id))


@pytest.mark.parametrize("how", ["sigstop", "stop"])
def test_a_redis_outage_longer_than_the_hang_timeout_kills_nobody(tmp_path, start_pool, how):
    server = Server(tmp_path)
    server.start()
    try:
        env = {"RESQUE_REDIS_URL": server.url, "RESQUE_NAMESPACE": "hangs"}
        config = str(write(tmp_path / "pool.yml", "demo: 2\n"))
        pool = start_pool("-c", config, env=env, settings=HANG_TIMEOUT)
        before = set(pool.wait_for_workers({"demo": 2}))
        if how == "sigstop":
            server.process.send_signal(signal.SIGSTOP)
        else:
            server.stop()
        try:
            time.sleep(7)  # the outage: well past the 2 s hang timeout
        finally:
            if how == "sigstop":
                server.process.send_signal(signal.SIGCONT)
            else:
                server.start()
        wait_until(
            lambda: server.client.scard("hangs:workers") == 2,
            timeout=TIMEOUT,
            message="both workers registered",
        )
        time.sleep(3)  # give a wrong kill after the outage the chance to show
        assert set(pool.workers()) >= before, pool.log()
        assert not re.search("made no progress", pool.log()), pool.log()
    finally:
        server.stop()


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="no writable /dev/shm")
def test_progress_files_are_unlinked_files_in_dev_shm():
    """A worker touches its progress file once or twice per job: on a memory filesystem
    that is no disk metadata write. The file is unlinked at once, so nothing is left."""
    from resque_pool.pool.hangs import HangWatch

    watch = HangWatch(timeout=60)
    fd = watch.open()
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
        assert target.startswith("/dev/shm/resque-pool-progress-"), target
        assert target.endswith(" (deleted)"), target
    finally:
        watch.discard(fd)
    assert HangWatch(timeout=None).open() is None
