"""Job time limits: ``@job(timeout=...)``, ``RESQUE_JOB_TIMEOUT``; a job past its limit is
ended and recorded as a ``JobTimeout`` failure, with fork per job and in-process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import pytest

import tests.support.limits_jobs  # noqa: F401  (registers the jobs enqueued here)
from resque_pool import enqueue, job
from resque_pool.errors import JobTimeout
from resque_pool.resque.jobs import Job
from resque_pool.worker.limits import Limits
from tests.support.common import wait_until

HOST = socket.gethostname()
TIMEOUT = 30.0


def start_worker(spawn_manage, env=None, settings=None) -> subprocess.Popen:
    env = {"INTERVAL": "0.2", **(env or {})}
    return spawn_manage("resque_work", "--queues", "demo", env=env, settings=settings or {})


def failures(resque) -> list[dict]:
    return [json.loads(raw) for raw in resque.client.lrange(resque.key("failed"), 0, -1)]


def one_failure(resque) -> dict:
    wait_until(lambda: failures(resque), timeout=TIMEOUT, message="a failure entry")
    [entry] = failures(resque)
    return entry


def failed_counted_once(resque) -> None:
    """The failure entry is written before stat:failed is incremented (Resque's order), so
    a reader that has just seen the entry waits for the count."""
    wait_until(
        lambda: resque.client.get(resque.key("stat", "failed")) == "1",
        timeout=TIMEOUT,
        message="stat:failed at 1",
    )
    assert resque.client.get(resque.key("stat", "failed")) == "1"


def stop(worker: subprocess.Popen) -> int:
    worker.send_signal(signal.SIGQUIT)
    return worker.wait(TIMEOUT)


MODES = [pytest.param({}, id="fork"), pytest.param({"FORK_PER_JOB": "false"}, id="in-process")]


@pytest.mark.parametrize("mode", MODES)
def test_a_job_past_its_own_limit_is_a_jobtimeout_failure(resque, spawn_manage, mode):
    # Requeueing on, and a default limit that would not fire: the job's own 1 s wins, and
    # a job ended at its limit is a failure, never requeued.
    settings = {"RESQUE_REQUEUE_DIRTY_JOBS": True, "RESQUE_JOB_TIMEOUT": 300}
    worker = start_worker(spawn_manage, mode, settings)
    enqueue("LimitedSleep", 60)
    entry = one_failure(resque)
    assert entry["exception"] == "resque_pool.errors.JobTimeout"
    assert entry["error"] == "job exceeded its time limit of 1s"
    assert entry["payload"] == {"class": "LimitedSleep", "args": [60]}
    assert entry["worker"] == f"{HOST}:{worker.pid}:demo"
    failed_counted_once(resque)
    assert resque.client.llen(resque.key("queue", "demo")) == 0
    # The worker goes on with the next job.
    enqueue("Record", "after")
    wait_until(
        lambda: resque.client.smembers(resque.key("demo", "done")) == {"after"},
        timeout=TIMEOUT,
        message="the next job",
    )
    # The job wrote its token before the worker cleared its in-flight record: wait for that.
    wait_until(
        lambda: not resque.client.exists(resque.key("worker", f"{HOST}:{worker.pid}:demo")),
        timeout=TIMEOUT,
        message="the in-flight record cleared",
    )
    assert stop(worker) == 0
    assert len(failures(resque)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_resque_job_timeout_bounds_jobs_without_their_own(resque, spawn_manage, mode):
    worker = start_worker(spawn_manage, mode, {"RESQUE_JOB_TIMEOUT": 0.5})
    enqueue("Sleep", 60)
    entry = one_failure(resque)
    assert (entry["exception"], entry["error"]) == (
        "resque_pool.errors.JobTimeout",
        "job exceeded its time limit of 0.5s",
    )
    failed_counted_once(resque)
    assert stop(worker) == 0


def test_a_job_that_swallows_its_timeout_is_killed_and_recorded_by_the_worker(resque, spawn_manage):
    worker = start_worker(
        spawn_manage, {"RESQUE_TERM_TIMEOUT": "0.5"}, {"RESQUE_REQUEUE_DIRTY_JOBS": True}
    )
    enqueue("StubbornSleep", 60)
    entry = one_failure(resque)
    # The job saw JobTimeout (and swallowed it); the KILL after RESQUE_TERM_TIMEOUT ended it.
    assert resque.client.smembers(resque.key("limits", "swallowed")) == {"1"}
    assert (entry["exception"], entry["error"]) == (
        "resque_pool.errors.JobTimeout",
        "job exceeded its time limit of 1s",
    )
    failed_counted_once(resque)
    assert resque.client.llen(resque.key("queue", "demo")) == 0
    assert stop(worker) == 0


def test_the_jobs_own_timeout_wins_over_the_workers_limit():
    limits = Limits(job_timeout=30)
    own = Job.from_raw("demo", '{"class":"LimitedSleep","args":[1]}')
    other = Job.from_raw("demo", '{"class":"Sleep","args":[1]}')
    garbage = Job.from_raw("demo", "not json")
    assert limits.timeout_for(own) == 1.0
    assert limits.timeout_for(other) == 30.0
    assert limits.timeout_for(garbage) == 30.0
    assert Limits().timeout_for(other) is None


def test_limits_resolve_from_the_settings_unless_given(settings):
    settings.RESQUE_JOB_TIMEOUT = 12
    settings.RESQUE_WORKER_MAX_JOBS = 100
    assert Limits.resolve() == Limits(12, 100, None)
    assert Limits.resolve(job_timeout=3, max_memory_mb=512) == Limits(3, 100, 512)


@pytest.mark.parametrize("bad", [0, -1, "5", True])
def test_a_timeout_that_is_not_a_positive_number_is_refused(bad):
    with pytest.raises(ValueError, match="timeout"):
        job(queue="demo", name="BadTimeout", timeout=bad)(lambda: None)


def test_jobtimeout_names_its_limit():
    assert str(JobTimeout.after(2.5)) == "job exceeded its time limit of 2.5s"
