"""The benchmark harness runs end to end at its smallest size, so it cannot rot.

No timing is asserted: only that every figure produced a row for our pool and that the
rows have the promised shape. Peers are left out (they are optional, and Celery alone
would take longer than the whole test); the floors the issue compares against are in."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="reads /proc/<pid>/smaps_rollup"
    ),
    pytest.mark.slow,
]


def test_harness_runs_every_figure_at_the_smallest_size(tmp_path):
    output = tmp_path / "results.json"
    # fmt: off
    command = [
        sys.executable, "bench/run.py", "--systems", "ours", "--n", "1",
        "--throughput-n", "1", "--repetitions", "1", "--jobs", "20", "--fork-jobs", "5",
        "--drain-timeout", "20", "--enqueue-jobs", "20", "--respawn-n", "1", "--kills", "1",
        "--healthy-age", "0", "--changes", "1", "--idle-n", "1", "--idle-window", "0.5",
        "--pickup-n", "1", "--stamps", "1", "--load", "5",
        "--output", str(output), "--no-plot",
    ]
    # fmt: on
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    rows = json.loads(output.read_text())
    assert all({"name", "system", "n", "value", "unit"} <= set(row) for row in rows)
    failed = [row for row in rows if "error" in row]
    assert failed == []
    ours = {row["name"] for row in rows if row["system"] == "ours"}
    for name in (
        "start-up",
        "memory PSS",
        "memory USS",
        "throughput, in-process",
        "throughput, fork per job",
        "enqueue, one client",
        "respawn p50",
        "reconfiguration p95",
        "idle manager CPU",
        "pick-up idle p50",
        "pick-up under load p95",
    ):
        assert name in ours, name
    floors = {row["system"] for row in rows if row["name"].startswith("throughput")}
    assert {"protocol limit", "fork floor"} <= floors
    fork = next(
        row for row in rows if row["name"] == "throughput, fork per job" and row["system"] == "ours"
    )
    assert set(fork["ratios"]) == {"fork floor"}  # measured in the same run
    assert (tmp_path / "results-machine.json").exists()


def test_a_peer_that_is_not_installed_is_reported_as_skipped(tmp_path):
    # rq and django-rq are installed here: this interpreter is made unable to find them.
    hidden = tmp_path / "hide_rq"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text(
        "import sys\nsys.modules['rq'] = sys.modules['django_rq'] = None\n"
    )
    output = tmp_path / "results.json"
    # fmt: off
    command = [
        sys.executable, "bench/run.py", "--systems", "ours,rq", "--figures", "enqueue",
        "--repetitions", "1", "--enqueue-jobs", "20", "--output", str(output), "--no-plot",
    ]
    # fmt: on
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(hidden)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rq: skipped (not installed: rq, django_rq)" in done.stdout
    rows = json.loads(output.read_text())
    assert [row for row in rows if row["system"] == "rq"] == [
        {
            "name": "*",
            "system": "rq",
            "n": None,
            "value": None,
            "unit": "",
            "skipped": "not installed: rq, django_rq",
        }
    ]
    assert any(row["system"] == "ours" and row["value"] for row in rows)


def test_the_deploy_figure_runs_at_a_small_size(tmp_path):
    """bench/deploy.py end to end with 3 workers: HUP and the hot swap never run more
    workers than the count, the all-at-once swap does, and no method loses a job (no
    timing asserted)."""
    output = tmp_path / "deploy.json"
    command = [sys.executable, "-m", "bench.deploy", "--workers", "3", "--output", str(output)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    hup, hot_swap, all_at_once = json.loads(output.read_text())
    assert (hup["method"], hot_swap["method"], all_at_once["method"]) == (
        "HUP",
        "hot swap",
        "hot swap, all at once",
    )
    assert hup["most_workers"] == hot_swap["most_workers"] == 3
    assert all_at_once["most_workers"] > 3  # two whole pools at once
    assert hup["lost"] == hot_swap["lost"] == all_at_once["lost"] == 0
    assert hup["jobs"] > 0 and hup["copy_mib"] > 0 and hup["seconds_all_slots_new"] > 0


def test_the_metrics_scrape_bench_runs_at_a_small_size():
    done = subprocess.run(
        [sys.executable, "-m", "bench.metrics_scrape", "--queues", "30", "--workers", "10"]
        + ["--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.startswith("30 queues, 10 workers: scrape "), done.stdout
    assert "scrape / llen loop" in done.stdout


def test_the_fleet_figure_runs_at_a_small_size(tmp_path):
    """bench/fleet.py end to end with 2 pools of 2 workers (no timing asserted)."""
    output = tmp_path / "fleet.json"
    command = [
        sys.executable, "-m", "bench.fleet", "--pools", "2", "--workers", "2", "--window", "2",
        "--jobs", "200", "--registered", "20", "--output", str(output),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["pools"] == 2 and result["registered"] == 20
    assert result["idle_commands_per_s"] >= 0 and result["drain_jobs_per_s"] > 0
    assert result["overview_ms"] > 0 and result["workers_page_ms_registered"] > 0


def test_the_memory_budget_figure_runs_at_a_small_size(tmp_path):
    """bench/memory_budget.py end to end with 3 workers in a 400 MB cgroup: both runs
    report their jobs, kills and refusals (no timing asserted); without root or a memory
    cgroup it says why and writes a skipped result."""
    output = tmp_path / "memory.json"
    command = [
        sys.executable, "-m", "bench.memory_budget", "--workers", "3", "--limit-mb", "400",
        "--jobs", "6", "--hold", "0.3", "--output", str(output),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(output.read_text())
    if "skipped" in result:
        pytest.skip(f"bench.memory_budget: {result['skipped']}")
    off, on = result["runs"]
    assert (off["mode"], on["mode"]) == ("off", "on")
    assert off["budget_mb"] is None and on["budget_mb"] == 360.0  # 400 MB less 10 %
    for run in (off, on):
        assert run["jobs"] == 6 and run["completed"] + run["lost"] == 6
        assert run["oom_kills"] >= 0 and run["most_workers"] <= 3
    assert set(result["ratios"]) == {
        "oom_kills on/off", "lost on/off", "completed on/off", "seconds on/off",
    }  # fmt: skip


def test_the_autoscale_figure_runs_at_a_small_size(tmp_path):
    """bench/autoscale.py end to end with 40 jobs, floor 1, max 3, a 2 s cooldown: each
    system measured reaches a peak within its bounds, drains the burst, loses nothing and
    is back at its floor (no timing asserted). Celery, an optional peer, is measured when
    installed and reported as skipped when not."""
    output = tmp_path / "autoscale.json"
    command = [
        sys.executable, "-m", "bench.autoscale", "--jobs", "40", "--max", "3",
        "--cooldown", "2", "--repetitions", "1", "--output", str(output),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["settings"]["cooldown"] == 2 and result["settings"]["maximum"] == 3
    measured = {run["system"] for run in result["runs"]}
    celery = importlib.util.find_spec("celery") is not None
    assert measured == ({"ours", "celery"} if celery else {"ours"})
    if not celery:
        assert result["medians"]["celery"] == {"skipped": "not installed: celery"}
    for run in result["runs"]:
        assert 1 < run["peak_workers"] <= 3, run["system"]
        assert run["done"] == 40 and run["lost"] == 0 and run["run_twice"] == 0, run["system"]
        assert run["drain_s"] > 0 and run["to_floor_s"] is not None, run["system"]
        assert run["samples"][-1][1] == 1, run["system"]
    assert set(result["ratios"]) == (
        {"to the maximum", "drain", "back to the floor", "peak workers"} if celery else set()
    )
