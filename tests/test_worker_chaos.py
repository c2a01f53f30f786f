"""Chaos in the suite: a real pool on the suite's Redis drains a few hundred jobs while
workers and job children are SIGKILLed, in both execution modes and both loss policies.
The large run (5,000 jobs, a kill every ~40 ms) is ``python -m bench.chaos``."""

from __future__ import annotations

import pytest

from bench import chaos

pytestmark = pytest.mark.slow


def run_chaos(resque, tmp_path, **options) -> tuple[chaos.Result, str]:
    """``chaos.run`` on the suite's Redis; the result and the end of the pool's log."""
    result = chaos.run(resque.url, resque.namespace, log_path=tmp_path / "pool.log", **options)
    return result, (tmp_path / "pool.log").read_text(errors="replace")[-3000:]


@pytest.mark.parametrize("requeue", [False, True], ids=["default", "requeue"])
@pytest.mark.parametrize("fork_per_job", [True, False], ids=["fork", "in-process"])
def test_every_job_is_accounted_for_under_sigkills(resque, tmp_path, fork_per_job, requeue):
    result, log = run_chaos(
        resque,
        tmp_path,
        jobs=300,
        fork_per_job=fork_per_job,
        requeue=requeue,
        workers=3,
        kill_every=0.4,
        kill_for=3.0,
        job_seconds=0.02,
        timeout=120,
        seed=7,
    )
    assert sum(result.kills.values()) > 0, log
    assert result.lost == [], (result, log)
    assert result.stale_workers == 0, (result, log)
    if requeue:
        assert (result.done, result.failed) == (300, 0), (result, log)
    else:
        assert result.done + result.failed == 300, (result, log)
        assert all(error.startswith("Resque::DirtyExit") for error in result.failure_errors)


@pytest.mark.parametrize("requeue", [False, True], ids=["default", "requeue"])
@pytest.mark.parametrize("fork_per_job", [True, False], ids=["fork", "in-process"])
def test_one_retry_lineage_per_job_under_sigkills(resque, tmp_path, fork_per_job, requeue):
    """Jobs with ``Retry(limit=3)`` that fail every attempt, while a worker or a job child
    is killed every 20-60 ms: counting an attempt, pushing its retry and removing its
    in-flight record are one step, so each job gives up exactly once, after exactly 4
    counted attempts (a kill is an attempt under the default policy, a requeue under the
    other), and none is lost."""
    result, log = run_chaos(
        resque,
        tmp_path,
        jobs=100,
        job="RetryChaos",
        fork_per_job=fork_per_job,
        requeue=requeue,
        workers=4,
        kill_every=0.04,
        kill_for=5.0,
        job_seconds=0.03,
        timeout=150,
        seed=11,
    )
    # Workers killed soon after they start come back with backoff: kills are fewer than
    # the window's 125, more so in process (no job children to kill meanwhile).
    assert sum(result.kills.values()) >= 8, (result.kills, log)
    print(result.kills, f"{result.seconds:.1f}s")
    assert result.lost == [], (result, log)
    assert result.failed_twice == [], (result, log)
    assert result.failed == 100, (result, log)
    assert all(error.endswith("(gave up after 4 attempts)") for error in result.failure_errors), (
        result.failure_errors
    )
    assert result.stale_workers == 0, (result, log)
