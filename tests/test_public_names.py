"""Names other people's code and tools depend on, pinned so that moving modules cannot
change them: the exception paths failure entries record, and the documented imports."""

from __future__ import annotations

import importlib

import pytest

from resque_pool import errors
from resque_pool.errors import exception_name


@pytest.mark.parametrize(
    "exception, recorded",
    [
        (errors.DirtyExit("x"), "Resque::DirtyExit"),
        (errors.UnknownJob("x"), "resque_pool.errors.UnknownJob"),
        (errors.MalformedPayload("x"), "resque_pool.errors.MalformedPayload"),
        (errors.BadArguments("x"), "resque_pool.errors.BadArguments"),
        (errors.TermException("SIGTERM"), "Resque::TermException"),
        (errors.DontPerform(), "Resque::Job::DontPerform"),
        (errors.JobTimeout("x"), "resque_pool.errors.JobTimeout"),
        (RuntimeError("x"), "RuntimeError"),
    ],
)
def test_failure_entries_record_the_same_exception_names(exception, recorded):
    assert exception_name(exception) == recorded


@pytest.mark.parametrize(
    "module, name",
    [
        ("resque_pool", "job"),
        ("resque_pool", "enqueue"),
        ("resque_pool", "DontPerform"),
        ("resque_pool", "TermException"),
        ("resque_pool", "Worker"),
        ("resque_pool", "failures"),
        ("resque_pool", "failure"),
        ("resque_pool", "Throttled"),
        ("resque_pool", "hooks"),
        ("resque_pool.worker", "Worker"),
        ("resque_pool.errors", "TermException"),
        ("resque_pool.hooks", "after_prefork"),
        ("resque_pool.pool.loaders", "Throttled"),
        # docs/pool.md's loader contract.
        ("resque_pool.pool.loaders", "ConfigLoader"),
        ("resque_pool.pool.loaders", "PoolConfig"),
        ("resque_pool.tasks", "ResqueBackend"),
        ("resque_pool.metrics.views", "metrics"),  # docs/metrics.md: the URLconf's view
        # docs/scheduling.md and docs/api.md: the scheduler's documented imports, whose code
        # lives in the Resque data layer (resque/delayed.py, producer.py, retry.py).
        ("resque_pool.scheduler", "enqueue_at"),
        ("resque_pool.scheduler", "enqueue_in"),
        ("resque_pool.scheduler", "remove_delayed"),
        ("resque_pool.scheduler", "scheduled_at"),
        ("resque_pool.scheduler", "delayed_count"),
        ("resque_pool.scheduler", "Retry"),
        ("resque_pool.scheduler.retry", "Retry"),
        ("resque_pool.scheduler.delayed", "enqueue_at"),
        ("resque_pool.scheduler.delayed", "enqueue_in"),
        ("resque_pool.scheduler.delayed", "remove_delayed"),
        ("resque_pool.scheduler.delayed", "scheduled_at"),
        ("resque_pool.scheduler.delayed", "delayed_count"),
        ("resque_pool.scheduler.delayed", "timestamp_count"),
        ("resque_pool.scheduler.delayed", "timestamps"),
        ("resque_pool.scheduler.delayed", "items_at"),
        ("resque_pool.scheduler.delayed", "DelayedJob"),
    ],
)
def test_documented_imports_work(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_short_paths_are_the_objects_themselves():
    import resque_pool
    from resque_pool.resque import failures, producer
    from resque_pool.worker.loop import Worker

    assert resque_pool.job is producer.job and resque_pool.Worker is Worker
    assert resque_pool.failures is failures and resque_pool.failure is failures


def test_the_scheduler_paths_name_the_data_layer_objects():
    """``resque_pool.scheduler.*`` and ``resque_pool.resque.*`` are one object each."""
    import resque_pool.scheduler
    from resque_pool.resque import delayed as keys
    from resque_pool.resque import producer, retry
    from resque_pool.scheduler import delayed

    assert resque_pool.scheduler.Retry is retry.Retry
    assert resque_pool.scheduler.retry.Retry is retry.Retry
    assert resque_pool.scheduler.enqueue_at is producer.enqueue_at is delayed.enqueue_at
    assert delayed.DelayedJob is keys.DelayedJob and delayed.items_at is keys.items_at


def test_every_short_name_resolves_in_a_fresh_interpreter():
    """``resque_pool.<name>`` works without importing the submodule first."""
    import subprocess
    import sys

    import resque_pool

    names = [name for name in resque_pool.__all__ if name != "__version__"]
    code = "import resque_pool\n" + "".join(f"resque_pool.{name}\n" for name in names)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
