"""The sweep's ``report.md`` and its plots: each result across seeds (table and figure), each
task's time and worker, then each task's own section as ``tlcourse run`` writes it."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ...atomic import atomic_path
from ...atomic import write_text as atomic_write_text
from ..runner.report import REPORT_FILE, report_section, status_counts
from .aggregate import SEED, across_seeds, finished_values, group_keys
from .summary import SweepSummary, sweep_resume_command

MAX_PLOTTED = 6  # results per figure; accuracies first


def _number(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _table_lines(table: pd.DataFrame) -> list[str]:
    lines = ["| notebook | combination | result | runs | mean | std | min | max |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.notebook} | {row.combination} | {row.result} | {row.runs} | "
                     f"{_number(row.mean)} | {_number(row.std)} | {_number(row.min)} | "
                     f"{_number(row.max)} |")
    return lines + [""]


def _plotted_results(values: pd.DataFrame) -> list[str]:
    names = list(dict.fromkeys(values["result"]))
    return sorted(names, key=lambda n: ("acc" not in n.lower(), names.index(n)))[:MAX_PLOTTED]


def _x_key(summary: SweepSummary) -> str | None:
    """The grid key on the x axis: the first non-seed key whose values are all numbers."""
    for name in group_keys(summary):
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in summary.grid[name]):
            return name
    return None


def _draw(ax: Any, values: pd.DataFrame, x_key: str | None, line_keys: list[str]) -> None:
    """One result: each seed a dot, each line the mean with one standard deviation."""
    positions: dict[str, int] = {}
    groups: dict[str, list[tuple[Any, float]]] = {}
    for grid, value in zip(values["grid"], values["value"]):
        label = ", ".join(f"{k}={grid[k]!r}" for k in line_keys if k in grid) or "runs"
        if x_key is not None and x_key in grid:
            x = grid[x_key]
        else:
            x = positions.setdefault(", ".join(f"{k}={v!r}" for k, v in grid.items()
                                               if k != SEED), len(positions))
        groups.setdefault(label, []).append((x, value))
    for label, points in groups.items():
        frame = pd.DataFrame(points, columns=["x", "y"])
        stats = frame.groupby("x")["y"].agg(["mean", "std"]).reset_index()
        line = ax.errorbar(stats["x"], stats["mean"], yerr=stats["std"].fillna(0), capsize=4,
                           marker="o", label=label)
        ax.scatter(frame["x"], frame["y"], s=12, alpha=0.5, color=line[0].get_color())
    if x_key is None and positions:
        ax.set_xticks(list(positions.values()), list(positions), rotation=30, ha="right",
                      fontsize=7)


def write_plot(summary: SweepSummary, notebook: str) -> Path | None:
    """``sweep.<notebook>.png``: each plotted result against the first numeric grid key, with
    the spread across seeds; ``None`` when no task of ``notebook`` recorded a number."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    values = finished_values(summary)
    if values.empty or not (values["notebook"] == notebook).any():
        return None
    values = values[values["notebook"] == notebook]
    names = _plotted_results(values)
    x_key = _x_key(summary)
    line_keys = [k for k in group_keys(summary) if k != x_key]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        _draw(ax, values[values["result"] == name], x_key, line_keys)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(x_key or "combination")
    axes[0][0].legend(fontsize=7)
    spread = "mean ± std over seeds" if SEED in summary.grid else "one run each"
    fig.suptitle(f"{notebook}: {spread}", fontsize=10)
    target = summary.out / f"sweep.{Path(notebook).stem}.png"
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return target


def _header(summary: SweepSummary) -> list[str]:
    counts = status_counts(summary, unstarted="not finished")
    grid = ", ".join(f"`{k}` = {v!r}" for k, v in summary.grid.items())
    fixed = ", ".join(f"`{k}={v!r}`" for k, v in summary.parameters.items()) or "none"
    total = sum(r.seconds for r in summary.notebooks)
    lines = [f"# Sweep {summary.started}", "",
             f"Profile **{summary.profile}**, grid {grid}, fixed `-p` values: {fixed}.",
             f"Cluster: {summary.cluster}. Kernel `{summary.kernel}`.", "",
             f"**{len(summary.plan)} tasks: {counts}**, {total:.1f} s of task time.", ""]
    if summary.resumed:
        lines += [f"Resumed {', '.join(summary.resumed)}.", ""]
    if summary.interrupted or summary.not_started or summary.failed:
        stopped = "Stopped by Ctrl-C. " if summary.interrupted else ""
        lines += [f"{stopped}Finish it with `{sweep_resume_command(summary.out)}`: it reruns "
                  "only the tasks that are not ok.", ""]
    return lines


def _task_lines(summary: SweepSummary) -> list[str]:
    lines = ["| task | status | time (s) | worker | torch threads | error |",
             "| --- | --- | --- | --- | --- | --- |"]
    for result in summary.notebooks:
        where = summary.placements.get(result.name, {})
        error = (result.error or "").replace("|", "\\|")
        lines.append(f"| {result.name} | {result.status} | {result.seconds:.1f} | "
                     f"{where.get('worker', '')} | {where.get('torch_threads', '')} | {error} |")
    lines += [f"| {name} | not finished | | | | |" for name in summary.not_started]
    return lines + [""]


def write_sweep_report(summary: SweepSummary) -> Path:
    """Write the plots and ``report.md``; return the report's path."""
    lines = _header(summary) + ["## Results across seeds", ""]
    table = across_seeds(summary)
    lines += _table_lines(table) if not table.empty else ["(No task recorded a number yet.)", ""]
    for notebook in dict.fromkeys(task.notebook for task in summary.tasks):
        plot = write_plot(summary, notebook)
        if plot is not None:
            lines += [f"![{notebook} across the grid]({plot.name})", ""]
    lines += ["## Tasks", ""] + _task_lines(summary)
    for result in summary.notebooks:
        lines += report_section(result, summary.out)
    return atomic_write_text("\n".join(lines).rstrip() + "\n", summary.out / REPORT_FILE)
