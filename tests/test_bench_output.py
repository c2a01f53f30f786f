"""bench/run.py's output (issue 20): a run writes to an ignored folder unless told to
publish, so a user's quick run never overwrites the committed results and plot; a
difference of medians within its noise prints as such, not as a negative cost."""

from __future__ import annotations

import subprocess

from bench import report, run
from bench.figures import Bench
from tests.support.common import ROOT


def test_a_run_writes_to_an_ignored_folder_unless_told_to_publish():
    quick = run.parse(["--quick"])
    assert quick.output == ROOT / "bench" / "out" / "results.json"
    assert quick.plot == ROOT / "bench" / "out" / "benchmarks.png"
    published = run.parse(["--quick", "--publish"])
    assert published.output == ROOT / "bench" / "results.json"
    assert published.plot == ROOT / "docs" / "img" / "benchmarks.png"
    # git ignores the default folder, and still tracks the published files.
    ignored = subprocess.run(
        ["git", "check-ignore", "bench/out/results.json", "bench/out/benchmarks.png"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == ["bench/out/results.json", "bench/out/benchmarks.png"]
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "bench/results.json", "docs/img/benchmarks.png"],
        cwd=ROOT,
        capture_output=True,
    )
    assert tracked.returncode == 0
    explicit = run.parse(["--output", "/tmp/x.json"])
    assert str(explicit.output) == "/tmp/x.json"


def bench_with_startups(startups: dict[int, list[float]], loads: list[float]) -> Bench:
    bench = Bench(url="redis://unused", client=None, options=None)
    for n, values in startups.items():
        for value in values:
            bench.sample("start-up", "ours", n, "s", value)
    for value in loads:
        bench.sample("django load (django.setup())", "ours", None, "s", value)
    bench.flush_samples()
    return bench


def derived(bench: Bench) -> dict[tuple, dict]:
    from bench import figures

    # The derivation startup_and_memory() runs after its samples, on these rows alone.
    figures.derive_startup_costs(bench)
    return {(row["name"], row["n"]): row for row in bench.rows}


def test_a_difference_of_medians_within_its_noise_prints_as_such():
    # Start-up medians 0.50 s (spread 0.10), load median 0.52 s (spread 0.08): the pool's
    # "cost" of -5 ms per worker is noise, not a saving.
    bench = bench_with_startups({4: [0.45, 0.50, 0.55], 16: [0.80, 0.81, 0.82]}, [0.48, 0.52, 0.56])
    rows = derived(bench)
    beyond = rows["start-up beyond Django, per worker", 4]
    assert beyond["value"] < 0 and beyond["within_noise"] is True
    assert beyond["noise"] == 45.0  # (0.10 + 0.08) s / 4 workers
    table = report.table(bench.rows)
    line = next(
        t for t in table.splitlines() if t.startswith("start-up beyond Django") and " 4 " in t
    )
    assert "within noise (±45.0)" in line and "-5" not in line
    assert "within noise" in report.summary(bench.rows)
    # A difference clear of its noise is a number as before.
    slope = rows["start-up per extra worker", 16]
    assert "within_noise" not in slope and slope["value"] > 0


def test_one_run_cannot_show_a_negative_cost():
    bench = bench_with_startups({4: [0.40], 16: [0.50]}, [0.52])
    rows = derived(bench)
    assert rows["start-up beyond Django, per worker", 4]["within_noise"] is True
    assert "noise" not in rows["start-up beyond Django, per worker", 4]
    positive = rows["start-up per extra worker", 16]
    assert positive["value"] > 0 and "within_noise" not in positive
