"""The memory budget with real processes: a pool forks only the workers that fit, says so
once, publishes it, keeps running, and forks the rest when the budget grows or the counts
shrink; inside a real memory cgroup (as root) it budgets 90 % of the limit and refuses
forks where the same pool without a budget is OOM-killed; the tree's PSS as the budget
measures it; the setting's checks.

Workers of a known size: with ``TEST_BALLAST_MB`` the pool's manager holds that many MB
and each worker makes its own copy (tests/support/processes.py), so that a worker and the
manager each take about 200 MB more than the application; the budget's arithmetic then
does not depend on how much the demo project weighs today.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from resque_pool.capacity import cgroup, memory
from resque_pool.capacity.cgroup import Limit
from resque_pool.capacity.memory import MB, Budget, MemoryBudget, pss_bytes
from tests.support import cgroups
from tests.support.common import ROOT, manage_command, wait_until
from tests.support.pool_fixtures import Pool, write
from tests.support.processes import kill_tree

BALLAST = {"TEST_BALLAST_MB": "200"}
# The manager alone measures about 250 MB (200 of ballast) and settled workers about 230:
# at the first fork 250 + 2 * 250 fits in 850 and a third does not; with two workers
# settled the pool uses about 710, and 710 + 230 does not fit either.
BUDGET_FOR_TWO = 850
REFUSED = re.compile(
    r"memory budget: not forking 3 workers for demo: the pool uses \d+ MB of 850 MB "
    r"and a worker takes about \d+ MB"
)


def published_memory(pool, when=lambda found: True, **expected):
    """The pool's ``memory`` state once it has the ``expected`` values (and ``when``
    holds)."""

    def matches():
        state = pool.state()
        found = state.get("memory") or {}
        if all(found.get(k) == v for k, v in expected.items()) and when(found):
            return state
        return None

    return wait_until(matches, 60, 0.2, lambda: f"memory state {expected} (log:\n{pool.log()})")


def heartbeats(pool, count: int) -> None:
    """Wait until the pool has published ``count`` more distinct heartbeats (its loop kept
    coming round: one a second with RESQUE_POOL_STATE_TTL = 3)."""
    seen = {pool.state()["heartbeat"]}
    wait_until(
        lambda: seen.add(pool.state()["heartbeat"]) or len(seen) > count,
        60,
        0.2,
        f"{count} heartbeats",
    )


def test_a_pool_forks_only_what_fits_and_a_bigger_budget_forks_the_rest(
    start_pool, tmp_path, process_settings
):
    config = write(tmp_path / "pool.yml", "demo: 5\n")
    env = process_settings(RESQUE_POOL_MEMORY_BUDGET_MB=BUDGET_FOR_TWO, RESQUE_POOL_STATE_TTL=3)
    pool = start_pool("-c", str(config), env={**BALLAST, **env})

    pool.wait_for_workers({"demo": 2})
    # Once a reading saw the two workers with their own copies of the ballast (readings
    # for the state come every 10 s): a third worker would not fit.
    state = published_memory(
        pool,
        lambda found: found["used_bytes"] + found["worker_bytes"] > found["budget_bytes"],
        refused=3,
    )
    assert state["status"] == "running"
    assert sum(len(pids) for pids in state["workers"].values()) == 2
    found = state["memory"]
    assert (found["budget_bytes"], found["source"]) == (BUDGET_FOR_TWO * MB, "setting")
    assert found["used_bytes"] > 2 * 200 * MB and found["worker_bytes"] > 200 * MB
    assert found["fit"] == 0

    # The loop keeps coming round, re-reading the budget, and refuses quietly.
    heartbeats(pool, 4)
    assert pool.process.poll() is None
    assert len(pool.workers()) == 2
    assert len(REFUSED.findall(pool.log())) == 1, pool.log()

    # A bigger budget (HUP loads the settings again, in a new generation): the rest fork.
    module = tmp_path / "settings-modules" / f"{env['DJANGO_SETTINGS_MODULE']}.py"
    module.write_text(module.read_text() + "RESQUE_POOL_MEMORY_BUDGET_MB = 4000\n")
    pool.signal(signal.SIGHUP)
    pool.wait_for_workers({"demo": 5}, timeout=90)
    state = published_memory(pool, refused=0, budget_bytes=4000 * MB)
    assert state["memory"]["fit"] > 0
    assert len(REFUSED.findall(pool.log())) == 1


def test_lower_counts_end_the_refusal_with_one_line(start_pool, database_env, process_settings):
    from resque_pool.models import WorkerCount

    WorkerCount.objects.create(queues="demo", count=5)
    env = process_settings(RESQUE_POOL_MEMORY_BUDGET_MB=BUDGET_FOR_TWO)
    pool = start_pool("--pool", "here", env={**BALLAST, **database_env, **env})
    published_memory(pool, refused=3)
    pool.wait_for_log(REFUSED.pattern)

    WorkerCount.objects.filter(queues="demo").update(count=2)
    published_memory(pool, refused=0)
    pool.wait_for_log(r"memory budget: forks fit again: the pool uses \d+ MB of 850 MB")
    assert len(pool.workers()) == 2
    assert len(REFUSED.findall(pool.log())) == 1


def test_no_budget_forks_every_worker(start_pool, tmp_path):
    """``0`` turns the budget off: the tree is still measured and published."""
    config = write(tmp_path / "pool.yml", "demo: 3\n")
    pool = start_pool("-c", str(config), settings={"RESQUE_POOL_MEMORY_BUDGET_MB": 0})
    pool.wait_for_workers({"demo": 3})
    state = published_memory(pool, budget_bytes=None, source="setting", fit=None, refused=0)
    assert state["memory"]["used_bytes"] > 0
    assert "memory budget" not in pool.log()


# -- in a real memory cgroup ----------------------------------------------------------------

CGROUP_LIMIT = 1000 * MB  # 900 MB of budget: two workers of the ballast's size, as above


@pytest.mark.slow
@pytest.mark.parametrize("version", [cgroup.V1, cgroup.V2])
def test_in_a_limited_cgroup_the_budget_is_90_percent_and_forks_are_refused_not_killed(
    version, resque, process_settings, tmp_path
):
    """The pool runs in a child cgroup of this process's with a 1000 MB limit: the budget
    it publishes is 900 MB from the cgroup, it runs the two workers that fit, and the
    kernel never OOM-kills anything. The same pool with the budget off (0) in the same
    cgroup forks all five and is OOM-killed. ``manage.py check`` in the cgroup warns
    about a budget above the limit (W003)."""
    child = cgroups.make(version)
    if isinstance(child, str):
        pytest.skip(child)
    config = write(tmp_path / "pool.yml", "demo: 5\n")
    pools: list[Pool] = []

    def start(name: str, **settings) -> Pool:
        log_path = tmp_path / f"{name}.log"
        with log_path.open("w") as log:
            env = resque.env(INTERVAL="0.2", **BALLAST, **process_settings(**settings))
            command = child.wrap(manage_command("resque_pool", "-c", str(config)))
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
            )
        pools.append(Pool(process, log_path))
        return pools[-1]

    try:
        child.set_limit(CGROUP_LIMIT)
        pool = start("budgeted", RESQUE_POOL_STATE_TTL=3)
        state = published_memory(
            pool,
            lambda found: found["used_bytes"] > 600 * MB,
            budget_bytes=int(CGROUP_LIMIT * 0.9),
            source=version,
            refused=3,
        )
        pool.wait_for_workers({"demo": 2})
        pool.wait_for_log(rf"memory budget: 900 MB \({version} memory\.\S+ 1000 MB less 10%\)")
        heartbeats(pool, 4)
        assert pool.process.poll() is None and len(pool.workers()) == 2
        assert child.oom_kills() == 0
        assert pool.state()["figures"]["died"] == 0, pool.log()
        assert state["memory"]["used_bytes"] <= state["memory"]["budget_bytes"]

        check = subprocess.run(
            child.wrap(manage_command("check", "--tag", "resque_pool")),
            env=resque.env(**process_settings(RESQUE_POOL_MEMORY_BUDGET_MB=2000)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (
            "(resque_pool.W003) RESQUE_POOL_MEMORY_BUDGET_MB (2000) is above this "
            "container's memory limit (1000 MB, " + version in check.stderr
        ), check.stderr

        kill_tree(pool.pid)
        wait_until(lambda: child.procs() == [], 30, message="the cgroup empty")
        unbudgeted = start("unbudgeted", RESQUE_POOL_MEMORY_BUDGET_MB=0)
        wait_until(child.oom_kills, 90, 0.2, lambda: f"an OOM kill (log:\n{unbudgeted.log()})")
    finally:
        for pool in pools:
            kill_tree(pool.pid)
        child.remove()


# -- measuring, in this process and its children --------------------------------------------


def test_pss_of_a_process_and_a_gone_one():
    mine = pss_bytes(os.getpid())
    assert mine is not None and 10 * MB < mine < 2000 * MB
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert pss_bytes(child.pid) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_admits_what_fits_and_refuses_the_rest_once(caplog):
    """This process as the manager (``root`` and ``manager``), no worker yet: a new
    worker is estimated at the manager's own PSS."""
    clock = Clock()
    probe = MemoryBudget(Budget(10**12, "setting"), os.getpid(), os.getpid(), clock=clock)
    reading = probe.measure([])
    own = reading.manager
    assert reading.used >= own > 0 and probe.estimate() == own
    budget = MemoryBudget(
        Budget(reading.used + own * 5 // 2, "setting"), os.getpid(), os.getpid(), clock=clock
    )
    with caplog.at_level("INFO", logger="resque_pool.capacity.memory"):
        admitted = budget.admit(["a", "a", "b", "b", "b"], [])
        assert admitted == ["a", "a"] and budget.refused == 3
        assert budget.admit(["a", "b", "b"], []) == ["a", "b"]  # same reading: still room
        assert budget.snapshot([])["refused"] == 1
        clock.now += memory.DECISION_PERIOD
        budget.admit(["b", "b", "b"], [])
        assert budget.admit([], []) == []  # nothing short: the episode ends
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "not forking" in line]) == 1
    assert re.search(r"not forking 3 workers for b: the pool uses \d+ MB", lines[0])
    assert [line for line in lines if "forks fit again" in line] != []


def test_a_new_worker_counts_as_the_estimate_until_it_settles():
    """A child just started shares pages (here: it is small); for SETTLE seconds it
    counts as the manager's size, then as what it measures."""
    clock = Clock()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        wait_until(lambda: (pss_bytes(child.pid) or 0) > MB, 10, message="the child's PSS")
        budget = MemoryBudget(Budget(10**12, "setting"), os.getpid(), os.getpid(), clock=clock)
        budget.measure([])  # the manager alone: its peak is the first estimate
        reading = budget.measure([child.pid])
        small = reading.workers[child.pid]
        assert 0 < small < budget.manager_peak
        assert budget.estimate() == budget.manager_peak
        grows = budget.manager_peak - reading.manager  # what the manager shares with it
        assert budget.pending(budget.estimate()) == budget.manager_peak - small + grows
        clock.now += memory.SETTLE
        assert budget.estimate() == small and budget.pending(small) == 0
    finally:
        child.kill()
        child.wait()


def test_an_exited_workers_size_counts_for_a_while():
    """Workers that recycle after each job: the largest job's size must outlive its
    worker, or the next fork would be estimated from workers that happen to run small
    jobs."""
    clock = Clock()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        wait_until(lambda: (pss_bytes(child.pid) or 0) > MB, 10, message="the child's PSS")
        budget = MemoryBudget(Budget(10**12, "setting"), os.getpid(), os.getpid(), clock=clock)
        size = budget.measure([child.pid]).workers[child.pid]
    finally:
        child.kill()
        child.wait()
    budget.measure([])
    assert budget.estimate() == size  # not the manager's (this process, larger)
    clock.now += memory.REMEMBER
    budget.measure([])
    assert budget.departed == {} and budget.estimate() == budget.manager_peak


def test_a_worker_counts_with_its_job_children():
    clock = Clock()
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "time.sleep(60)",
        ]
    )
    try:
        from resque_pool.unix.process import descendants

        [grandchild] = wait_until(lambda: descendants(parent.pid), 10, message="the job child")
        wait_until(lambda: (pss_bytes(grandchild) or 0) > MB, 10, message="its PSS")
        budget = MemoryBudget(Budget(None, "none"), os.getpid(), os.getpid(), clock=clock)
        reading = budget.measure([parent.pid])
        alone = pss_bytes(parent.pid)
        assert reading.workers[parent.pid] > alone + MB
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()


def test_the_snapshot_without_a_budget_still_measures():
    budget = MemoryBudget(Budget(None, "none", Limit(None, "cgroup v1")), os.getpid(), os.getpid())
    snapshot = budget.snapshot([])
    assert snapshot["budget_bytes"] is None and snapshot["source"] == "none"
    assert snapshot["used_bytes"] > 0 and snapshot["fit"] is None
    assert budget.admit(["a"] * 300, []) == ["a"] * 300  # no budget: everything forks


# -- the setting's checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, code, text",
    [
        (-1, "resque_pool.E004", "must be an integer >= 0 or None, not -1."),
        ("900", "resque_pool.E005", "must be an integer >= 0 or None, not '900' (str)."),
        (900.5, "resque_pool.E005", "must be an integer >= 0 or None, not 900.5 (float)."),
    ],
)
def test_checks_refuse_a_bad_budget_in_one_line(settings, value, code, text):
    from django.core.checks import run_checks

    from resque_pool.checks import TAG

    settings.RESQUE_POOL_MEMORY_BUDGET_MB = value
    # Only our checks: Django 6's model checks ask the database whether it has JSON.
    [message] = [m for m in run_checks(tags=[TAG]) if m.id.startswith("resque_pool")]
    assert message.id == code
    assert message.msg == f"RESQUE_POOL_MEMORY_BUDGET_MB {text}"


@pytest.mark.parametrize("value", [None, 0, 900])
def test_checks_take_a_good_budget(settings, value):
    from django.core.checks import run_checks

    from resque_pool.checks import TAG

    settings.RESQUE_POOL_MEMORY_BUDGET_MB = value
    assert [m for m in run_checks(tags=[TAG]) if m.id.startswith("resque_pool")] == []
