"""How training went: loss and accuracy per epoch (one or several runs), accuracy against
the number of training images per class, and the loss against the learning rate of a range test."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ..errors import InvalidParameterError, unknown_name
from ._figures import new_figure, one_axes, root_figure

_METRIC_LABELS = {
    "loss": "loss (cross-entropy, lower is better)",
    "acc": "accuracy",
    "lr": "learning rate",
    "seconds": "seconds per epoch",
}


def _history_records(history: Any, where: str) -> tuple[list[Mapping[str, Any]], str]:
    """Records (one mapping per epoch) and a default label, from any accepted history form."""
    label = ""
    if hasattr(history, "records"):
        records = list(history.records)
        label = str(getattr(history, "label", "") or "")
    elif hasattr(history, "to_dict") and hasattr(history, "columns"):  # a pandas DataFrame
        frame = history
        if "epoch" not in frame.columns and frame.index.name == "epoch":
            frame = frame.reset_index()
        records = frame.to_dict("records")
    elif isinstance(history, Sequence) and not isinstance(history, str):
        records = list(history)
    else:
        raise InvalidParameterError(
            f"{where}: cannot read a history from a {type(history).__name__}. Pass the History "
            "returned by tlcourse.train.fit, a list of per-epoch dicts, or a DataFrame."
        )
    if not records:
        raise InvalidParameterError(f"{where}: a history is empty (no finished epoch to plot).")
    for r in records:
        if not isinstance(r, Mapping):
            raise InvalidParameterError(
                f"{where}: each epoch record must be a dict like {{'epoch': 1, 'train_loss': ...}}, "
                f"got {type(r).__name__}."
            )
    return records, label


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and values of ``key`` (missing or NaN values dropped)."""
    xs, ys = [], []
    for i, r in enumerate(records):
        value = r.get(key)
        if value is None:
            continue
        value = float(value)
        if math.isnan(value):
            continue
        epoch = r.get("epoch", i + 1)
        xs.append(float(i + 1 if epoch is None or (isinstance(epoch, float) and math.isnan(epoch)) else epoch))
        ys.append(value)
    return np.asarray(xs), np.asarray(ys)


def plot_history(
    *histories: Any,
    labels: Sequence[str] | None = None,
    metrics: str | Sequence[str] = ("loss", "acc"),
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Training curves, train (dashed) and validation (solid), one panel per metric.

    Pass several runs to compare them in one figure (e.g. scratch vs pretrained); each run
    gets one colour. The best epoch (lowest validation loss) is starred: the epoch whose
    weights early stopping keeps. A widening gap between train and validation is overfitting.
    """
    where = "plot_history"
    if not histories:
        raise InvalidParameterError(f"{where}: pass at least one history, e.g. plot_history(history).")
    metric_list = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metric_list:
        raise InvalidParameterError(f"{where}: metrics is empty; use e.g. ('loss', 'acc').")
    runs = [_history_records(h, where) for h in histories]
    if labels is None:
        names = [lab or (f"run {i + 1}" if len(runs) > 1 else "") for i, (_, lab) in enumerate(runs)]
    else:
        names = [str(s) for s in ([labels] if isinstance(labels, str) else labels)]
        if len(names) != len(runs):
            raise InvalidParameterError(f"{where}: {len(names)} labels for {len(runs)} histories; give one label per run.")
    if ax is None:
        fig, grid = new_figure(1, len(metric_list), (4.6, 3.4))
        panels = list(grid[0])
    else:
        given = [ax] if isinstance(ax, Axes) else list(ax)
        if len(given) != len(metric_list) or not all(isinstance(a, Axes) for a in given):
            raise InvalidParameterError(f"{where}: ax must be {len(metric_list)} Axes, one per metric {metric_list}.")
        panels = given
        fig = root_figure(given[0])
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    for metric, panel in zip(metric_list, panels):
        drawn = False
        starred = False
        for i, ((records, _), name) in enumerate(zip(runs, names)):
            colour = colours[i % len(colours)]
            prefix = f"{name}: " if name else ""
            for split, style, word in (("train", "--", "train"), ("val", "-", "validation")):
                xs, ys = _series(records, f"{split}_{metric}")
                if len(xs):
                    panel.plot(xs, ys, style, color=colour, marker="o", ms=3, label=f"{prefix}{word}")
                    drawn = True
            xs, ys = _series(records, metric)
            if len(xs):
                panel.plot(xs, ys, "-", color=colour, marker="o", ms=3, label=name or metric)
                drawn = True
            ex, ev = _series(records, "val_loss")
            if len(ex):
                best = float(ex[int(np.argmin(ev))])
                mx, my = _series(records, f"val_{metric}")
                if not len(mx):
                    mx, my = _series(records, metric)
                hit = np.flatnonzero(mx == best)
                panel.axvline(best, color=colour, ls=":", lw=1, alpha=0.7)
                if hit.size:
                    panel.plot(
                        [best], [my[hit[0]]], marker="*", ms=14, color=colour, ls="none",
                        markeredgecolor="black", label=None if starred else "best epoch (lowest val loss)",
                    )
                    starred = True
        if not drawn:
            keys = sorted({k for records, _ in runs for r in records for k in r})
            raise InvalidParameterError(
                f"{where}: no history has {metric!r} (looked for train_{metric}, val_{metric}, "
                f"{metric}). Available keys: {', '.join(keys)}."
            )
        panel.set_xlabel("epoch")
        panel.set_ylabel(_METRIC_LABELS.get(metric, metric))
        panel.set_title(f"{_METRIC_LABELS.get(metric, metric).split(' (')[0].capitalize()} per epoch")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        if metric == "lr":
            panel.set_yscale("log")
        panel.grid(alpha=0.3)
        panel.legend(fontsize=8)
    return fig


def plot_learning_curve(
    results: Any,
    metric: str = "accuracy",
    spread: str = "minmax",
    ax: Axes | None = None,
) -> Figure:
    """Accuracy against images per class (log x), one line per method.

    The line is the mean over seeds; the band shows the spread over seeds (``"minmax"`` or
    ``"std"``), so a learner sees which differences are larger than the seed-to-seed noise.
    Pretrained features win most where data is scarce: the left of this plot.
    """
    where = "plot_learning_curve"
    if not (hasattr(results, "columns") and hasattr(results, "groupby")):
        raise InvalidParameterError(
            f"{where}: results must be a pandas DataFrame with columns n_per_class, {metric} "
            f"[, method, seed], got {type(results).__name__}."
        )
    missing = [c for c in ("n_per_class", metric) if c not in results.columns]
    if missing:
        raise InvalidParameterError(
            f"{where}: results lacks column(s) {missing}; it has {list(results.columns)}."
        )
    if spread not in ("minmax", "std"):
        raise unknown_name("spread", spread, ["minmax", "std"])
    if len(results) == 0:
        raise InvalidParameterError(f"{where}: results is empty.")
    frame = results.copy()
    if "method" not in frame.columns:
        frame["method"] = metric
    fig, ax = one_axes(ax, (6.0, 4.0), where)
    multi_seed = False
    for method, sub in frame.groupby("method", sort=False):
        stats = sub.groupby("n_per_class")[metric].agg(["mean", "min", "max", "std", "count"]).sort_index()
        xs = stats.index.to_numpy(dtype=float)
        line = ax.plot(xs, stats["mean"], marker="o", label=str(method))[0]
        if (stats["count"] > 1).any():
            multi_seed = True
            if spread == "minmax":
                lo, hi = stats["min"], stats["max"]
            else:
                sd = stats["std"].fillna(0.0)
                lo, hi = stats["mean"] - sd, stats["mean"] + sd
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    ns = np.sort(frame["n_per_class"].unique())
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(int(n)) if float(n).is_integer() else str(n) for n in ns])
    ax.minorticks_off()
    values = frame[metric].to_numpy(dtype=float)
    if np.nanmax(values) <= 1.0 and np.nanmin(values) >= 0.0:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("training images per class (log scale)")
    ax.set_ylabel(metric)
    seeds = f"{frame['seed'].nunique()} seeds" if "seed" in frame.columns else "runs"
    band = "min–max" if spread == "minmax" else "±1 std"
    note = f"line = mean over {seeds}, band = {band}" if multi_seed else "one run per point"
    ax.set_title(f"{metric.capitalize()} vs images per class\n({note})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_lr_range(sweep: Any, marks: Mapping[str, float] | None = None, ax: Axes | None = None) -> Figure:
    """Loss against learning rate (log x) of a range test (:func:`tlcourse.train.lr_range_test`).

    The faint line is each batch's loss, the solid one the smoothed loss; the dashed line marks
    the rate of the lowest smoothed loss. ``marks`` (label -> rate) draws the rates you chose,
    so the reader sees where they sit on the curve: on the falling part, below the minimum.
    """
    where = "plot_lr_range"
    lrs, losses, smoothed = (getattr(sweep, k, None) for k in ("lrs", "losses", "smoothed"))
    if lrs is None or losses is None or smoothed is None:
        raise InvalidParameterError(
            f"{where}: sweep must be what tlcourse.train.lr_range_test returned (with lrs, losses, "
            f"smoothed), got {type(sweep).__name__}."
        )
    if len(lrs) < 2:
        raise InvalidParameterError(f"{where}: the sweep has {len(lrs)} step(s); a curve needs at least 2.")
    fig, ax = one_axes(ax, (6.0, 3.8), where)
    ax.plot(lrs, losses, color="#1f77b4", alpha=0.25, lw=1, label="loss of each batch")
    ax.plot(lrs, smoothed, color="#1f77b4", lw=2, label="smoothed loss")
    best = int(np.argmin(smoothed))
    ax.axvline(lrs[best], color="grey", ls="--", lw=1, label=f"lowest smoothed loss (lr {lrs[best]:.1g})")
    for (label, lr), colour in zip((marks or {}).items(), ("#d62728", "#2ca02c", "#9467bd", "#ff7f0e")):
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise InvalidParameterError(f"{where}: marks[{label!r}] must be a positive rate, got {lr!r}.")
        ax.axvline(lr, color=colour, lw=1.5, label=f"{label}: {lr:.1g}")
    ax.set_xscale("log")
    top = max(smoothed[0], np.nanmin(smoothed)) * 1.5
    ax.set_ylim(min(np.nanmin(losses), np.nanmin(smoothed)) * 0.9, max(top, np.nanmin(smoothed) * 1.1))
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(_METRIC_LABELS["loss"])
    ax.set_title("Learning-rate range test: pick a rate on the falling part, below the minimum", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


__all__ = ["plot_history", "plot_learning_curve", "plot_lr_range"]
