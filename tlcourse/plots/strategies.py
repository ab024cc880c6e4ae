"""Experiment tables as figures: any table of numbers as an annotated heatmap (the transfer
decision matrix) and one cell of that matrix as a bar per strategy with its seeds."""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import CourseError, InvalidParameterError, unknown_name
from ._figures import detach, one_axes, wrap


def plot_heatmap(
    table: Any,
    title: str = "",
    fmt: str = ".2f",
    cmap: Any = "viridis",
    ax: Axes | None = None,
) -> Figure:
    """A table of numbers as an annotated colour grid (e.g. the transfer decision matrix).

    Rows and columns keep the DataFrame's labels and axis names; missing values stay blank.
    """
    where = "plot_heatmap"
    if not (hasattr(table, "to_numpy") and hasattr(table, "columns") and hasattr(table, "index")):
        raise InvalidParameterError(f"{where}: table must be a pandas DataFrame, got {type(table).__name__}.")
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise InvalidParameterError(f"{where}: table is empty (shape {table.shape}).")
    try:
        values = table.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{where}: every cell must be a number (NaN for blanks); converting failed: {exc}."
        ) from exc
    try:
        format(1.0, fmt)
    except ValueError as exc:
        raise InvalidParameterError(f"{where}: fmt {fmt!r} is not a number format such as '.2f' or '.0%'.") from exc
    if isinstance(cmap, str) and cmap not in plt.colormaps():
        raise unknown_name("colormap", cmap, plt.colormaps())
    rows, cols = values.shape
    fig, ax = one_axes(ax, (max(4.0, 1.1 * cols + 2.5), max(3.0, 0.5 * rows + 1.8)), where)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, aspect="auto")
    colormap = image.get_cmap()
    norm = image.norm
    for r in range(rows):
        for c in range(cols):
            v = values[r, c]
            if not np.isfinite(v):
                continue
            red, green, blue, _ = colormap(norm(v))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(np.arange(cols), [wrap(c, 18) for c in table.columns], rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(np.arange(rows), [wrap(i, 28) for i in table.index], fontsize=8)
    if table.columns.name:
        ax.set_xlabel(str(table.columns.name))
    if table.index.name:
        ax.set_ylabel(str(table.index.name))
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return fig


def plot_strategies(
    runs: Any, dataset: str, n_per_class: int, metric: str = "acc", ax: Axes | None = None
) -> Figure:
    """One cell of the matrix: a bar per strategy (mean over seeds), a dot per seed, std as error bar.

    When the dots of two strategies overlap, the difference between their bars may be luck.
    ``runs`` is :func:`tlcourse.experiments.run_grid`'s table; ``ax`` draws into your figure
    (as the lessons do, two cells side by side).
    """
    from ..data import get_info
    from ..experiments import METRICS, STRATEGIES, check_table, column_label, ordered_strategies

    check_table(runs, metric, "plot_strategies")
    cell = runs[(runs["dataset"] == dataset) & (runs["n_per_class"] == n_per_class)]
    if cell.empty:
        cells = ", ".join(f"{d} {n}/class" for d, n in dict.fromkeys(zip(runs["dataset"], runs["n_per_class"])))
        raise CourseError(f"plot_strategies: no runs for {dataset} with {n_per_class}/class. The table has: {cells}.")
    names = ordered_strategies(cell["strategy"])
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
        detach(fig)
    else:
        fig = ax.figure
    for i, s in enumerate(names):
        values = cell.loc[cell["strategy"] == s, metric].to_numpy()
        ax.bar(i, values.mean(), color=f"C{i}", alpha=0.75, yerr=values.std(ddof=1) if len(values) > 1 else None, capsize=4)
        ax.scatter(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values, color="black", s=14, zorder=3)
    chance = 1 / len(get_info(dataset).class_names)
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.0%})")
    ax.set_xticks(range(len(names)), [STRATEGIES[s] for s in names], rotation=15)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(f"test {METRICS.get(metric, metric)}")
    seeds = cell["seed"].nunique()
    ax.set_title(f"{column_label(runs, dataset, n_per_class)}\nmean of {seeds} seed(s)"
                 + (", bar = +-1 std, dots = seeds" if seeds > 1 else ""), fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return fig


__all__ = ["plot_heatmap", "plot_strategies"]
