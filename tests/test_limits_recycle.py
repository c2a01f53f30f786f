"""Recycling: a worker exits after RESQUE_WORKER_MAX_JOBS jobs or above
RESQUE_WORKER_MAX_MEMORY_MB with status 75, and its manager replaces it at once."""

from __future__ import annotations

import json
import random
import re
import socket

import tests.support.limits_jobs  # noqa: F401  (registers the jobs enqueued here)
from resque_pool import enqueue
from resque_pool.worker.limits import (
    MEMORY_JITTER,
    RECYCLE_EXIT_CODE,
    Limits,
    Recycler,
    rss_mb,
)
from tests.support.common import wait_until
from tests.support.pool_fixtures import write

HOST = socket.gethostname()
TIMEOUT = 60.0
ENV = {"DJANGO_SETTINGS_MODULE": "tests.support.pool_settings"}
# A worker above its memory limit of 100 MB (its own threshold, 90 to 100 MB) says so.
MEMORY_RECYCLE = r"recycles: it uses \d+ MB \(limit (9\d\.\d|100\.0) MB: 100 MB less jitter\)"


def done(resque, name="done") -> set[str]:
    return resque.client.smembers(resque.key("limits", name))


def failures(resque) -> list[dict]:
    return [json.loads(raw) for raw in resque.client.lrange(resque.key("failed"), 0, -1)]


def test_resque_work_exits_75_after_max_jobs(resque, run_manage):
    for token in range(3):
        enqueue("Record", token)
    result = run_manage(
        "resque_work", "-q", "demo", "--interval", "0.2", "--max-jobs", "2", env=ENV
    )
    assert result.returncode == RECYCLE_EXIT_CODE, result.stderr
    assert re.search(r"recycles: it ran 2 jobs \(limit 2\)", result.stderr)
    assert len(resque.client.smembers(resque.key("demo", "done"))) == 2
    assert resque.client.llen(resque.key("queue", "demo")) == 1  # the third waits, untouched
    assert resque.client.smembers(resque.key("workers")) == set()


def test_resque_work_refuses_a_limit_that_is_not_positive(run_manage):
    result = run_manage("resque_work", "-q", "demo", "--max-jobs", "0", env=ENV)
    assert result.returncode == 2
    assert "--max-jobs: must be above 0, not 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_resque_work_exits_75_after_the_job_that_passed_max_memory(resque, run_manage):
    # In-process, so the job's memory is the worker's own. The worker starts at about 55 MB
    # and Grow keeps 150 MB: far above 100 MB whatever threshold the worker drew.
    env = {**ENV, "FORK_PER_JOB": "false"}
    enqueue("Record", "before")
    enqueue("Grow", 150, "big")
    for token in ("after-1", "after-2"):
        enqueue("Record", token)
    result = run_manage(
        "resque_work", "-q", "demo", "--interval", "0.2", "--max-memory", "100", env=env
    )
    assert result.returncode == RECYCLE_EXIT_CODE, result.stderr
    assert re.search(MEMORY_RECYCLE, result.stderr), result.stderr
    # It finished the job that took it over the limit, and took no other after it.
    assert done(resque) == {"big"}
    assert resque.client.smembers(resque.key("demo", "done")) == {"before"}
    assert resque.client.llen(resque.key("queue", "demo")) == 2
    assert resque.client.smembers(resque.key("workers")) == set()
    assert failures(resque) == []
    # The next worker (below the limit) does the rest: no job was lost.
    result = run_manage(
        "resque_work", "-q", "demo", "--interval", "0", "--max-memory", "100", env=env
    )
    assert result.returncode == 0, result.stderr
    assert resque.client.smembers(resque.key("demo", "done")) == {"before", "after-1", "after-2"}
    assert resque.client.llen(resque.key("queue", "demo")) == 0
    assert resque.client.get(resque.key("stat", "processed")) == "4"
    assert failures(resque) == []


def test_pool_replaces_a_worker_after_max_jobs_without_backoff(resque, start_pool, tmp_path):
    pool = start_pool(
        "-c", str(write(tmp_path / "pool.yml", "demo: 1\n")), settings={"RESQUE_WORKER_MAX_JOBS": 3}
    )
    [first] = pool.wait_for_workers({"demo": 1})
    tokens = {str(token) for token in range(10)}
    for token in sorted(tokens):
        enqueue("Record", token)
    wait_until(
        lambda: resque.client.smembers(resque.key("demo", "done")) == tokens,
        timeout=TIMEOUT,
        message="every job done",
    )
    wait_until(
        lambda: len(re.findall(r"recycled itself; replacing it", pool.log())) >= 3,
        timeout=TIMEOUT,
        message="three recycles",
    )
    log = pool.log()
    assert "exited on its own" not in log and "keep dying" not in log
    assert failures(resque) == []
    wait_until(
        lambda: resque.client.get(resque.key("stat", "processed")) == "10",
        timeout=TIMEOUT,
        message="10 processed",
    )
    workers = pool.wait_for_workers({"demo": 1})
    assert first not in workers  # a fresh worker took its place
    assert len(resque.client.smembers(resque.key("workers"))) == 1


def test_pool_replaces_an_in_process_worker_above_its_memory_limit(resque, start_pool, tmp_path):
    pool = start_pool(
        "-c",
        str(write(tmp_path / "pool.yml", "demo: 1\n")),
        env={"FORK_PER_JOB": "false"},
        settings={"RESQUE_WORKER_MAX_MEMORY_MB": 100},
    )
    pool.wait_for_workers({"demo": 1})
    for token in range(3):
        enqueue("Grow", 150, token)  # keeps 150 MB in the worker: over the limit each time
    wait_until(lambda: done(resque) == {"0", "1", "2"}, timeout=TIMEOUT, message="every Grow job")
    wait_until(
        lambda: len(re.findall(r"recycled itself; replacing it", pool.log())) >= 3,
        timeout=TIMEOUT,
        message="three recycles",
    )
    assert re.search(MEMORY_RECYCLE, pool.log())
    assert "keep dying" not in pool.log()
    assert failures(resque) == []
    pool.wait_for_workers({"demo": 1})


def test_max_jobs_jitter_stays_within_ten_percent():
    seen = {Recycler(Limits(max_jobs=100), random.Random(seed)).max_jobs for seed in range(200)}
    assert min(seen) >= 100 and max(seen) <= 110 and len(seen) > 1
    assert Recycler(Limits(max_jobs=5)).max_jobs == 5  # too small to jitter
    assert Recycler(Limits()).max_jobs is None


def test_recycler_reports_why():
    recycler = Recycler(Limits(max_jobs=2))
    assert recycler.job_done() is None
    assert recycler.job_done() == "ran 2 jobs (limit 2)"
    low = Recycler(Limits(max_memory_mb=1))
    assert re.fullmatch(r"uses \d+ MB \(limit (0\.9|1\.0) MB: 1 MB less jitter\)", low.job_done())
    assert rss_mb() > 1


def test_each_worker_draws_its_memory_threshold_a_little_below_the_limit():
    drawn = [Recycler(Limits(max_memory_mb=500), random.Random(seed)) for seed in range(200)]
    thresholds = [recycler.max_memory_mb for recycler in drawn]
    # Never above the limit, never more than 10 % below it ...
    assert all(500 * (1 - MEMORY_JITTER) <= mb <= 500 for mb in thresholds)
    # ... and spread over that band, so workers started together recycle at different jobs.
    assert max(thresholds) - min(thresholds) > 500 * MEMORY_JITTER * 0.8
    assert len({round(mb) for mb in thresholds}) > 20
    assert {recycler.memory_limit_mb for recycler in drawn} == {500}
    assert Recycler(Limits()).max_memory_mb is None
