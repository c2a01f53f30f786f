"""Chaos in the suite: a real pool on the suite's Redis drains a few hundred jobs while
workers and job children are SIGKILLed, in both execution modes and both loss policies.
The large run (5,000 jobs, a kill every ~40 ms) is ``python -m bench.chaos``."""

from __future__ import annotations

import pytest

from bench import chaos

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("requeue", [False, True], ids=["default", "requeue"])
@pytest.mark.parametrize("fork_per_job", [True, False], ids=["fork", "in-process"])
def test_every_job_is_accounted_for_under_sigkills(resque, tmp_path, fork_per_job, requeue):
    result = chaos.run(
        resque.url,
        resque.namespace,
        jobs=300,
        fork_per_job=fork_per_job,
        requeue=requeue,
        workers=3,
        kill_every=0.4,
        kill_for=3.0,
        job_seconds=0.02,
        timeout=120,
        seed=7,
        log_path=tmp_path / "pool.log",
    )
    log = (tmp_path / "pool.log").read_text(errors="replace")[-3000:]
    assert sum(result.kills.values()) > 0, log
    assert result.lost == [], (result, log)
    assert result.stale_workers == 0, (result, log)
    if requeue:
        assert (result.done, result.failed) == (300, 0), (result, log)
    else:
        assert result.done + result.failed == 300, (result, log)
        assert all(error.startswith("Resque::DirtyExit") for error in result.failure_errors)
