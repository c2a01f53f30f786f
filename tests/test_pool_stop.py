"""Stopping a pool after its current jobs and waiting for it (``python -m
resque_pool.stop`` and ``manage.py resque_pool_stop``), as a Kubernetes ``preStop`` hook or
a deploy script does, against real pools."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from resque_pool import stop
from resque_pool.resque import wire
from tests.support.common import ROOT, wait_until
from tests.support.pool_fixtures import write
from tests.support.processes import alive

pytestmark = pytest.mark.slow


def light_stop(resque, *args: str) -> subprocess.CompletedProcess:
    # What a preStop hook has: no DJANGO_SETTINGS_MODULE at all.
    env = {k: v for k, v in resque.env().items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-m", "resque_pool.stop", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def answer(result: subprocess.CompletedProcess) -> tuple[int, str]:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result
    assert result.stderr == "", result
    return result.returncode, lines[0]


def start(start_pool, tmp_path, *args: str, env=None):
    app = f"stop-{uuid.uuid4().hex[:8]}"
    config = write(tmp_path / "pool.yml", "demo: 2\n")
    pool = start_pool("-c", str(config), "--appname", app, *args, env=env)
    pool.wait_for_workers({"demo": 2})
    return pool, app


def push_slow(resque, token: str, seconds: float) -> None:
    pipe = resque.client.pipeline(transaction=False)
    pipe.sadd(resque.key("queues"), "demo")
    pipe.rpush(resque.key("queue", "demo"), wire.job_payload("SlowRecord", [token, seconds]))
    pipe.execute()


def busy_worker(resque) -> None:
    wait_until(
        lambda: any(
            resque.client.get(resque.key("worker", worker))
            for worker in resque.client.smembers(resque.key("workers"))
        ),
        20,
        0.05,
        "a worker processing the slow job",
    )


@pytest.mark.parametrize("term_child", [False, True], ids=["quit", "term-child"])
def test_the_pool_stops_after_its_current_job_and_the_command_waits(
    resque, start_pool, tmp_path, term_child
):
    # Under TERM_CHILD the manager exits at once on QUIT (resque-pool's
    # shutdown_everything_now): the command must still wait for the workers.
    pidfile = tmp_path / "pool.pid"
    env = {"TERM_CHILD": "1"} if term_child else None
    pool, _app = start(start_pool, tmp_path, "--pidfile", str(pidfile), env=env)
    workers = pool.workers()
    push_slow(resque, "slow", 2.0)
    busy_worker(resque)
    began = time.monotonic()
    code, line = answer(light_stop(resque, "--pidfile", str(pidfile), "--grace-period", "30"))
    waited = time.monotonic() - began
    assert code == stop.STOPPED, line
    assert line.startswith(f"stopped: pool {pool.pid} (")
    # The job ran to its end: the command returned only after it did.
    assert resque.client.smembers(resque.key("demo", "done")) == {"slow"}
    assert waited > 1.0
    assert not any(alive(pid) for pid in [pool.pid, *workers])
    assert resque.client.llen(resque.key("failed")) == 0


def test_a_grace_period_that_runs_out_says_which_processes_are_left(
    resque, start_pool, tmp_path, run_manage
):
    pool, app = start(start_pool, tmp_path)
    workers = pool.workers()
    push_slow(resque, "long", 30.0)
    busy_worker(resque)
    result = run_manage("resque_pool_stop", "--appname", app, "--grace-period", "1")
    code, line = answer(result)
    assert code == stop.STILL_RUNNING, line
    assert line.startswith(f"still running after the grace period of 1s: pool {pool.pid} (")
    busy = [pid for pid in workers if alive(pid)]
    assert busy and all(str(pid) in line for pid in busy)
    # The idle worker took QUIT and left; the busy one is still finishing its job.
    assert len(busy) == 1
    os.kill(busy[0], signal.SIGKILL)


def test_no_such_pool_a_stopped_one_and_bad_input(resque, start_pool, tmp_path, run_manage):
    missing = tmp_path / "none.pid"
    assert answer(light_stop(resque, "--pidfile", str(missing))) == (
        stop.NO_POOL,
        f"no pool: no pidfile at {missing}",
    )
    assert answer(run_manage("resque_pool_stop", "--appname", "no-such-app")) == (
        stop.NO_POOL,
        "no pool: no pool of app no-such-app on this host",
    )
    # A pool killed outright leaves its pidfile: there is nothing left to stop.
    pidfile = tmp_path / "dead.pid"
    pool, _app = start(start_pool, tmp_path, "--pidfile", str(pidfile))
    pool.signal(signal.SIGKILL)
    pool.wait_exit()
    code, line = answer(light_stop(resque, "--pidfile", str(pidfile)))
    assert (code, line) == (stop.STOPPED, f"not running: pool {pool.pid} ({pidfile})")
    for args in (["--grace-period", "0"], ["--grace-period", "soon"], ["-p", "x", "-a", "y"]):
        for result in (light_stop(resque, *args), run_manage("resque_pool_stop", *args)):
            assert result.returncode == stop.NO_POOL, result
            assert result.stdout == ""
            assert len(result.stderr.splitlines()) == 1, result.stderr
