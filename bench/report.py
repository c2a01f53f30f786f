"""The run's output: ratios of ours against every peer measured in the same run, the
printed table, ``results.json`` and the plot."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path


def add_ratios(rows: list[dict]) -> None:
    """``ratios`` on each of our rows: ours / that peer's value, same figure and N."""
    by_figure: dict[tuple, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row.get("value") is not None and not row.get("within_noise"):
            by_figure[row["name"], row["n"]][row["system"]] = row["value"]
    for row in rows:
        if row["system"] != "ours" or row.get("value") is None or row["unit"] == "%":
            continue  # a ratio of two growth percentages near zero says nothing
        if row.get("within_noise"):
            continue  # nor does a ratio of noise
        peers = by_figure[row["name"], row["n"]]
        ratios = {
            peer: round(row["value"] / value, 3)
            for peer, value in peers.items()
            if peer != "ours" and value
        }
        if ratios:
            row["ratios"] = ratios


def table(rows: list[dict]) -> str:
    lines = [f"{'figure':<44}{'system':<16}{'n':>4} {'value':>12} {'unit':<10} ratios"]
    for row in rows:
        if row.get("skipped"):
            lines.append(
                f"{'(all)':<44}{row['system']:<16}{'':>4} {'skipped':>12} {'':<10} {row['skipped']}"
            )
            continue
        value = shown(row)
        ratios = ", ".join(f"{peer} {ratio:.2f}" for peer, ratio in row.get("ratios", {}).items())
        n = "" if row["n"] is None else str(row["n"])
        lines.append(
            f"{row['name']:<44}{row['system']:<16}{n:>4} {value:>12} "
            f"{row['unit']:<10} {ratios or row.get('error', '')}"
        )
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    lines = ["| figure | system | N | value | unit | ours / peer |", "|---|---|---|---|---|---|"]
    for row in rows:
        if row.get("skipped"):
            lines.append(f"| (all) | {row['system']} | | skipped | | {row['skipped']} |")
            continue
        value = shown(row)
        ratios = ", ".join(f"{peer} {ratio:.2f}" for peer, ratio in row.get("ratios", {}).items())
        n = "" if row["n"] is None else row["n"]
        lines.append(
            f"| {row['name']} | {row['system']} | {n} | {value} | {row['unit']} | {ratios} |"
        )
    return "\n".join(lines)


def shown(row: dict) -> str:
    """A row's value as the table prints it: a difference within its noise says so."""
    if row.get("value") is None:
        return "failed"
    if row.get("within_noise"):
        noise = row.get("noise")
        return (
            f"within noise (±{noise:,.{_digits({'value': noise})}f})" if noise else ("within noise")
        )
    return f"{row['value']:,.{_digits(row)}f}"


def _digits(row: dict) -> int:
    value = abs(row["value"])
    return 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 3


def write_json(rows: list[dict], path: Path, machine: dict) -> None:
    path.write_text(json.dumps(rows, indent=1) + "\n")
    path.with_name(path.stem + "-machine.json").write_text(json.dumps(machine, indent=1) + "\n")


def title(machine: dict) -> str:
    return (
        f"django-resque-pool vs peers: {machine['nproc']} CPUs, Python {machine['python']},"
        f" Redis {machine['redis']}, {machine['when']}, load average"
        f" {machine['loadavg']:.1f} → {machine['loadavg_end']:.1f}"
    )


COLORS = {
    "ours": "#1f77b4",
    "separate": "#9467bd",
    "rq": "#d62728",
    "celery": "#2ca02c",
    "protocol limit": "#7f7f7f",
    "fork floor": "#bcbd22",
}


def plot(rows: list[dict], path: Path, title: str) -> bool:
    """Six panels a reader takes in at a glance; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    _lines(axes[0][0], rows, "start-up", "launch → N registered (s, lower is better)")
    _lines(axes[0][1], rows, "memory PSS", "summed PSS, idle (MiB, lower is better)")
    _bars(
        axes[0][2],
        rows,
        ["throughput, in-process", "throughput, fork per job"],
        "draining no-op jobs, jobs/s (higher is better)",
        log=True,
    )
    _bars(axes[1][0], rows, ["enqueue, one client"], "enqueue(), jobs/s (higher is better)")
    _bars(
        axes[1][1],
        rows,
        ["respawn p50", "respawn p95"],
        "respawn after SIGKILL, ms (lower is better)",
        log=True,
    )
    _bars(
        axes[1][2],
        rows,
        ["pick-up idle p50", "pick-up under load p50"],
        "pick-up latency p50, ms (lower is better)",
        log=True,
    )
    figure.suptitle(title, fontsize=13)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def _lines(axis, rows: list[dict], name: str, title: str) -> None:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        if row["name"] == name and row.get("value") is not None:
            series[row["system"]].append((row["n"], row["value"]))
    for system, points in series.items():
        points.sort()
        axis.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="o",
            label=system,
            color=COLORS.get(system),
            linewidth=2.5 if system == "ours" else 1.5,
        )
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("workers (N)")
    axis.set_xticks(sorted({p[0] for points in series.values() for p in points}))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)


def _bars(axis, rows: list[dict], names: list[str], title: str, log: bool = False) -> None:
    systems = [
        s
        for s in COLORS
        if any(r["system"] == s and r["name"] in names and r.get("value") for r in rows)
    ]
    width = 0.8 / max(len(systems), 1)
    for index, system in enumerate(systems):
        values = []
        for name in names:
            found = [
                r
                for r in rows
                if r["name"] == name and r["system"] == system and r.get("value") is not None
            ]
            # The largest N measured for that figure stands for it.
            values.append(max(found, key=lambda r: r["n"] or 0)["value"] if found else 0)
        positions = [k + index * width for k in range(len(names))]
        axis.bar(positions, values, width, label=system, color=COLORS[system])
        for position, value in zip(positions, values, strict=True):
            if value:
                axis.annotate(
                    f"{value:,.0f}" if value >= 10 else f"{value:.1f}",
                    (position, value),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    axis.set_xticks([k + width * (len(systems) - 1) / 2 for k in range(len(names))])
    sizes = sorted({r["n"] for r in rows if r["name"] in names and r.get("n")})
    one_client = names[0].startswith("enqueue")
    suffix = f" (N={','.join(map(str, sizes))})" if sizes and not one_client else ""
    axis.set_xticklabels([name.replace("throughput, ", "") + suffix for name in names], fontsize=9)
    if log:
        axis.set_yscale("log")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8)


def summary(rows: list[dict]) -> str:
    """One line per figure and N, one column per system: the table docs/benchmarks.md shows."""
    systems = [
        s
        for s in ("ours", "separate", "rq", "celery", "protocol limit", "fork floor")
        if any(r["system"] == s and r.get("value") is not None for r in rows)
    ]
    keys: list[tuple] = []
    cells: dict[tuple, dict[str, str]] = defaultdict(dict)
    for row in rows:
        if row.get("skipped") or row["name"].startswith("commands per job"):
            continue
        key = (row["name"], row["n"], row["unit"])
        if key not in keys:
            keys.append(key)
        value = shown(row)
        ratios = row.get("ratios", {})
        cells[key][row["system"]] = value
        if ratios:
            cells[key]["ratios"] = ", ".join(f"{p} {r:.2f}" for p, r in ratios.items())
    header = ["figure", "N", "unit", *systems, "ours / peer"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        name, n, unit = key
        row = [name, "" if n is None else str(n), unit]
        row += [cells[key].get(system, "") for system in systems]
        lines.append("| " + " | ".join([*row, cells[key].get("ratios", "")]) + " |")
    return "\n".join(lines)


def main() -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        description="Print bench/run.py's results as the Markdown table of docs/benchmarks.md."
    )
    parser.add_argument("results", nargs="?", default="bench/results.json")
    path = Path(parser.parse_args().results)
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        sys.exit(f"bench.report: cannot read {path}: {error}")
    print(summary(rows))


if __name__ == "__main__":
    main()
