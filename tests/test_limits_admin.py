"""Limits per queue list: ``WorkerCount`` rows may set a job timeout, max jobs and max
memory for their list, merged across environment and pool as counts are; a change reaches
the pool's next worker without a restart. A custom loader's ``limits()`` reaches the
workers the same way."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

import tests.support.limits_jobs  # noqa: F401  (registers the jobs enqueued here)
from resque_pool import enqueue
from resque_pool.models import WorkerCount
from tests.support.common import wait_until
from tests.support.pool_fixtures import first_failure

TIMEOUT = 60.0


def sleep_ends_at_one_second(resque, pool) -> dict:
    """Enqueue ``Sleep(60)`` and check that the pool's worker ends it as a 1 s JobTimeout
    failure (a job without a limit of its own: the queue list's limit); the entry."""
    enqueue("Sleep", 60)
    entry = first_failure(resque, pool, timeout=TIMEOUT)
    assert (entry["exception"], entry["error"]) == (
        "resque_pool.errors.JobTimeout",
        "job exceeded its time limit of 1s",
    )
    return entry


@pytest.mark.django_db
def test_limits_merge_per_limit_across_environment_and_pool():
    WorkerCount.objects.create(queues="a", count=1, job_timeout=30, max_jobs=100)
    WorkerCount.objects.create(queues="a", count=2, environment="prod", max_jobs=500)
    WorkerCount.objects.create(queues="a", count=3, pool="web1", max_memory_mb=256)
    WorkerCount.objects.create(queues="b", count=1)
    WorkerCount.objects.create(queues="c", count=1, environment="staging", job_timeout=5)
    assert WorkerCount.objects.limits_for("prod", "web1") == {
        "a": {"job_timeout": 30, "max_jobs": 500, "max_memory_mb": 256}
    }
    assert WorkerCount.objects.limits_for(None, None) == {"a": {"job_timeout": 30, "max_jobs": 100}}
    assert WorkerCount.objects.limits_for("staging", None) == {
        "a": {"job_timeout": 30, "max_jobs": 100},
        "c": {"job_timeout": 5},
    }


def test_a_limit_of_zero_is_refused_with_a_message():
    row = WorkerCount(queues="a", count=1, max_jobs=0)
    with pytest.raises(ValidationError) as error:
        row.clean()
    assert error.value.message_dict == {
        "max_jobs": ["Leave it blank for no limit of its own, or give 1 or more."]
    }


def test_a_rows_limits_reach_the_running_pools_next_worker(start_pool, database_env, resque):
    # max_jobs=1: every worker is replaced after one job, so the next one reads the row anew.
    row = WorkerCount.objects.create(queues="demo", count=1, max_jobs=1)
    pool = start_pool("--pool", "here", env=database_env)
    pool.wait_for_workers({"demo": 1})
    row.job_timeout = 1
    row.save()
    # Read with the counts, in the same query, within a loader period (none per spawn).
    pool.wait_for_log(r"limits per queue list from database: \{'demo': \{'job_timeout': 1")
    enqueue("Record", "first")  # run by the worker started before the change
    wait_until(
        lambda: "recycled itself" in pool.log(), timeout=TIMEOUT, message="the first recycle"
    )
    pool.wait_for_workers({"demo": 1})
    sleep_ends_at_one_second(resque, pool)  # the replacement has the row's 1 s limit


def limiting_loader(limits: dict) -> dict:
    """Settings of a pool whose custom loader (``processes.LimitingLoader``) gives ``demo``
    these limits."""
    return {
        "RESQUE_POOL_CONFIG_LOADER": "tests.support.processes.throttled_limiting_loader",
        "TEST_LOADER_LIMITS": limits,
    }


def test_a_custom_loaders_limits_reach_the_pools_workers(start_pool, resque):
    # Without them neither would happen within the waits: no setting limits jobs or time.
    pool = start_pool(settings=limiting_loader({"job_timeout": 1, "max_jobs": 2}))
    [first] = pool.wait_for_workers({"demo": 1})
    enqueue("Record", "a")
    enqueue("Record", "b")
    pool.wait_for_log(r"recycled itself; replacing it", timeout=TIMEOUT)
    assert re.search(r"recycles: it ran 2 jobs \(limit 2\)", pool.log())
    [second] = pool.wait_for_workers({"demo": 1})
    assert second != first
    # The replacement started with the loader's limits too.
    entry = sleep_ends_at_one_second(resque, pool)
    assert entry["worker"].split(":")[1] == str(second)
    assert resque.client.smembers(resque.key("demo", "done")) == {"a", "b"}


def test_spawning_workers_never_asks_the_loader(start_pool, resque, tmp_path):
    calls = tmp_path / "limits-calls"
    settings = limiting_loader({"max_jobs": 5})
    settings["TEST_LOADER_LISTS"] = {"demo": 2, "high": 1, "low": 1}
    settings["TEST_LOADER_LIMITS_CALLS"] = str(calls)
    pool = start_pool(settings=settings)
    pool.wait_for_workers({"demo": 2, "high": 1, "low": 1})
    # Four workers of three lists forked with the limits of the one load at start (the
    # loader is throttled to 30 s): no call per spawn, nor per batch.
    assert calls.read_text().splitlines() == ["limits()"]


def test_invalid_limits_from_a_loader_are_logged_and_the_workers_run(start_pool, resque):
    pool = start_pool(settings=limiting_loader({"timeout": 1, "max_jobs": 2}))
    pool.wait_for_log(r"could not load the limits from .*unknown limit 'timeout' for 'demo'")
    [worker] = pool.wait_for_workers({"demo": 1})
    for token in ("a", "b", "c"):
        enqueue("Record", token)
    wait_until(
        lambda: resque.client.smembers(resque.key("demo", "done")) == {"a", "b", "c"},
        timeout=TIMEOUT,
        message=lambda: f"every job done (log:\n{pool.log()})",
    )
    # The settings' limits (none) apply: the one worker neither crashed nor recycled.
    assert pool.workers() == [worker]
    assert not re.search(r"failed|exited on its own|recycle", pool.log()), pool.log()


@pytest.mark.django_db
def test_the_admin_edits_limits_beside_the_counts():
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    user = User.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(user)
    form = {"queues": "reports", "count": "2", "environment": "", "pool": ""}
    response = client.post(
        reverse("admin:resque_pool_workercount_add"),
        {**form, "job_timeout": "300", "max_jobs": "1000", "max_memory_mb": ""},
    )
    assert response.status_code == 302, response.content[:2000]
    row = WorkerCount.objects.get(queues="reports")
    assert (row.job_timeout, row.max_jobs, row.max_memory_mb) == (300, 1000, None)
    listing = client.get(reverse("admin:resque_pool_workercount_changelist")).content.decode()
    # One span per limit, so that a narrow column breaks between limits, not inside one.
    limits = '<span class="limit">jobs 300s</span>, <span class="limit">max 1000 jobs</span>'
    assert limits in listing
    refused = client.post(
        reverse("admin:resque_pool_workercount_change", args=[row.pk]),
        {**form, "job_timeout": "0", "max_jobs": "", "max_memory_mb": ""},
    )
    assert "Leave it blank for no limit of its own" in refused.content.decode()
    assert WorkerCount.objects.get(pk=row.pk).job_timeout == 300
