"""Stops as platforms deliver them, and job children that die with their worker.

- Heroku stops a dyno with TERM to every process at once and KILL 30 s later (and asks
  for ``TERM_CHILD=1``); Kubernetes sends TERM to the container's main process only, and
  KILL to everything left when ``terminationGracePeriodSeconds`` ends. A job interrupted
  by either stop is, under ``RESQUE_REQUEUE_DIRTY_JOBS``, back at the head of its queue,
  as a killed one is, with no failure entry; without the policy it is a
  ``Resque::TermException`` failure, as in Resque.
- A job child asks the kernel to be killed when its worker dies (Linux), so a
  ``resque_work`` SIGKILLed mid-job leaves no job running on as an orphan.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

import pytest

from resque_pool.resque import wire
from tests.support.common import wait_until
from tests.support.pool_fixtures import write
from tests.support.processes import alive, children


def tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children(current))
    return found


def push(resque, tokens_and_seconds: list[tuple[str, float]]) -> None:
    pipe = resque.client.pipeline(transaction=False)
    pipe.sadd(resque.key("queues"), "demo")
    for token, seconds in tokens_and_seconds:
        pipe.rpush(
            resque.key("queue", "demo"), wire.job_payload("SlowOnceRecord", [token, seconds])
        )
    pipe.execute()


def heroku_stop(pool) -> None:
    """TERM to every process of the dyno at once, KILL to the survivors 10 s later (30 s
    on Heroku; RESQUE_TERM_TIMEOUT's 4 s fit in either)."""
    processes = tree(pool.pid)
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    kill_survivors(processes, grace=10)


def kubernetes_stop(pool) -> None:
    """TERM to the container's main process only, KILL to everything left when
    terminationGracePeriodSeconds ends (10 s here)."""
    processes = tree(pool.pid)
    os.kill(pool.pid, signal.SIGTERM)
    kill_survivors(processes, grace=10)


def kill_survivors(processes: list[int], grace: float) -> None:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in processes):
        time.sleep(0.1)
    for pid in processes:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("platform_stop", "fork_per_job", "requeue"),
    [
        pytest.param(heroku_stop, True, True, id="heroku-fork-requeue"),
        pytest.param(heroku_stop, True, False, id="heroku-fork-default"),
        pytest.param(heroku_stop, False, True, id="heroku-in-process-requeue"),
        pytest.param(heroku_stop, False, False, id="heroku-in-process-default"),
        pytest.param(kubernetes_stop, True, True, id="kubernetes-fork-requeue"),
        pytest.param(kubernetes_stop, False, True, id="kubernetes-in-process-requeue"),
    ],
)
def test_a_platform_stop_requeues_the_jobs_it_interrupts(
    resque, start_pool, tmp_path, platform_stop, fork_per_job, requeue
):
    env = {"TERM_CHILD": "1", "FORK_PER_JOB": "true" if fork_per_job else "false"}
    settings = {"RESQUE_REQUEUE_DIRTY_JOBS": requeue}
    config = str(write(tmp_path / "pool.yml", "demo: 3\n"))
    pool = start_pool("-c", config, env=env, settings=settings)
    pool.wait_for_workers({"demo": 3})
    # Three long jobs occupy the three workers; short ones wait behind them.
    jobs = [(f"long{n}", 60.0) for n in range(3)] + [(f"short{n}", 0.05) for n in range(6)]
    push(resque, jobs)
    # Each long job has started its first run (the run after the requeue is short).
    wait_until(
        lambda: all(resque.client.get(resque.key("test", "runs", f"long{n}")) for n in range(3)),
        20,
        message=lambda: f"three long jobs running:\n{pool.log()}",
    )
    platform_stop(pool)
    pool.wait_exit(20)

    failed = resque.client.lrange(resque.key("failed"), 0, -1)
    if not requeue:
        # Resque's answer: each interrupted job is a TermException failure.
        errors = sorted(
            (json.loads(entry)["exception"], json.loads(entry)["payload"]["args"][0])
            for entry in failed
        )
        assert errors == [("Resque::TermException", f"long{n}") for n in range(3)], (
            errors,
            pool.log(),
        )
        return
    assert failed == [], pool.log()
    # A new pool (the next dyno) runs everything, each interrupted job once more.
    again = start_pool("-c", config, env=env, settings=settings, name="pool-2")
    tokens = {token for token, _seconds in jobs}
    wait_until(
        lambda: resque.client.smembers(resque.key("demo", "done")) == tokens,
        60,
        message=lambda: f"every job done:\n{pool.log()}\n---\n{again.log()}",
    )
    assert resque.client.lrange(resque.key("failed"), 0, -1) == []
    assert resque.client.llen(resque.key("queue", "demo")) == 0
    log = pool.log()
    assert log.count("requeued at the head of demo (interruption 1)") == 3, log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_job_child_dies_with_its_worker(resque, spawn_manage):
    worker = spawn_manage(
        "resque_work", "--queues", "demo", env={"INTERVAL": "0.2", "FORK_PER_JOB": "true"}
    )
    resque.client.rpush(resque.key("queue", "demo"), wire.job_payload("Sleep", [60]))
    child = wait_until(lambda: children(worker.pid), 30, message="the job child")[0]
    assert alive(child)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    wait_until(lambda: not alive(child), 5, message="the job child to die with its worker")


def test_a_stop_sent_while_a_worker_starts_waits_for_its_handlers(resque, start_pool, tmp_path):
    """The manager's signals stay blocked in a worker it forks until the worker's own
    handlers exist: a QUIT that arrives meanwhile is the worker's graceful stop once it has
    started (exit 0), never the manager's handler (the signal lost) nor the default action
    (the worker killed by it)."""
    pool = start_pool(
        "-c",
        str(write(tmp_path / "pool.yml", "demo: 1\n")),
        settings={"TEST_PREFORK_SECONDS": 2},
    )
    pid = int(wait_until(lambda: resque.client.smembers(resque.key("test", "starting")), 30).pop())
    os.kill(pid, signal.SIGQUIT)
    pool.wait_for_log(rf"Reaped resque worker\[{pid}\] \(status: 0\)", 30)
