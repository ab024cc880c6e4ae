"""Checkers for lesson 06 (the decision matrix): the spread of a result over seeds, and which cells
have a clear winner.

:func:`clear_winners` recomputes, per dataset x size, the strategy whose worst seed beats every other
strategy's best seed (or ``None``), and names the usual mistakes: a winner named by the mean alone,
no winner anywhere, a comparison with the runner-up by mean only.
:func:`seed_spread` recomputes the mean and standard deviation over seeds per dataset x size x
strategy from the learner's own runs table and, when the answer is wrong, names the likely
mistake: grouped by the wrong columns, the population instead of the sample standard deviation,
the range instead of the standard deviation, another metric.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidParameterError
from ..feedback import Feedback
from .registry import register_checker

_CELL = ["dataset", "n_per_class", "strategy"]


@register_checker
def seed_spread(summary: Any, runs: Any, metric: str = "acc") -> Feedback:
    """``summary`` has one row per dataset x n_per_class x strategy and columns ``mean`` and ``std``
    (the sample standard deviation over seeds, pandas' default) of ``metric`` in ``runs``."""
    import pandas as pd

    if not isinstance(runs, pd.DataFrame) or not set(_CELL + ["seed", metric]) <= set(runs.columns):
        raise InvalidParameterError(f"seed_spread needs run_grid's table with columns {_CELL + ['seed', metric]}.")
    if not isinstance(summary, pd.DataFrame):
        return Feedback(False, f"summary must be a pandas DataFrame (from groupby(...).agg(...)); got {type(summary).__name__}.")
    missing = [c for c in ("mean", "std") if c not in summary.columns]
    if missing:
        return Feedback(False, f"summary has no column(s) {', '.join(missing)}; its columns: {', '.join(map(str, summary.columns))}. "
                               "Use .agg(['mean', 'std']).")
    grouped = runs.groupby(_CELL)
    right = grouped[metric].agg(["mean", "std"])
    if len(summary) != len(right):
        if len(summary) == len(runs):
            why = "one row per run: did you group by the seed too, or not group at all?"
        elif len(summary) < len(right):
            why = f"some cells were merged: group by all of {', '.join(_CELL)}."
        else:
            why = f"group by exactly {', '.join(_CELL)}."
        return Feedback(False, f"summary has {len(summary)} rows, expected {len(right)} (one per dataset x size x strategy): {why}")
    if list(summary.index.names) != _CELL:
        return Feedback(False, f"summary's index is {list(summary.index.names)}; expected {_CELL} (groupby those columns, in that order).")
    summary = summary.sort_index()
    if not np.allclose(summary["mean"].to_numpy(float), right["mean"].to_numpy(float), atol=1e-9):
        for other in ("acc", "balanced_acc"):
            if other != metric and other in runs.columns and np.allclose(
                summary["mean"].to_numpy(float), grouped[other].mean().to_numpy(float), atol=1e-9
            ):
                return Feedback(False, f"Your means are of {other!r}; this question asks about {metric!r}.")
        return Feedback(False, f"The 'mean' column does not match the mean of {metric!r} over seeds in each cell.")
    population = grouped[metric].std(ddof=0).to_numpy(float)
    std = summary["std"].to_numpy(float)
    if not np.allclose(std, right["std"].to_numpy(float), atol=1e-9, equal_nan=True):
        if np.allclose(std, population, atol=1e-9):
            return Feedback(False, "Your 'std' is the population standard deviation (ddof=0, numpy's default). With a "
                                   "handful of seeds use the sample standard deviation (ddof=1, pandas' .std()).")
        spread = (grouped[metric].max() - grouped[metric].min()).to_numpy(float)
        if np.allclose(std, spread, atol=1e-9):
            return Feedback(False, "Your 'std' is the range (max - min), not the standard deviation.")
        return Feedback(False, f"The 'std' column does not match the standard deviation of {metric!r} over seeds.")
    return Feedback(True, f"Right: {len(right)} cells, each with the mean and sample standard deviation over "
                          f"{runs['seed'].nunique()} seeds.")


def _clear_winners(runs: Any, metric: str, rivals: str = "all") -> dict[tuple[str, int], str | None]:
    """Per cell: the best-by-mean strategy if its min beats the max of the others (``rivals="all"``)
    or of the runner-up by mean only (``rivals="second"``); else ``None``."""
    out: dict[tuple[str, int], str | None] = {}
    stats = runs.groupby(_CELL)[metric].agg(["mean", "min", "max"])
    for (dataset, n), cell in stats.groupby(level=[0, 1], sort=False):
        cell = cell.droplevel([0, 1]).sort_values("mean", ascending=False)
        best, others = cell.index[0], cell.iloc[1:]
        if rivals == "second":
            others = others.iloc[:1]
        out[(dataset, int(n))] = best if len(others) and cell.loc[best, "min"] > others["max"].max() else None
    return out


@register_checker
def clear_winners(clear: Any, runs: Any, metric: str = "acc") -> Feedback:
    """``clear`` maps every ``(dataset, n_per_class)`` cell of ``runs`` to the strategy whose worst seed
    beats every other strategy's best seed on ``metric``, or ``None`` where the ranges overlap."""
    import pandas as pd

    if not isinstance(runs, pd.DataFrame) or not set(_CELL + ["seed", metric]) <= set(runs.columns):
        raise InvalidParameterError(f"clear_winners needs run_grid's table with columns {_CELL + ['seed', metric]}.")
    if not isinstance(clear, dict):
        return Feedback(False, f"clear must be a dict (dataset, n_per_class) -> strategy name or None; got {type(clear).__name__}.")
    right = _clear_winners(runs, metric)
    given = {(str(k[0]), int(k[1])) if isinstance(k, tuple) and len(k) == 2 else k: v for k, v in clear.items()}
    if set(given) != set(right):
        return Feedback(False, f"clear has the keys {sorted(map(str, given))}; expected one per cell: {sorted(map(str, right))}.")
    if given == right:
        named = sum(v is not None for v in right.values())
        return Feedback(True, f"Right: {named} of {len(right)} cells have a clear winner; in the others the seed ranges overlap.")
    by_mean = runs.groupby(_CELL)[metric].mean()
    mean_best = {cell: by_mean.loc[cell].idxmax() for cell in right}
    if given == mean_best:
        return Feedback(False, "You named the best mean in every cell. A winner is clear only when its worst seed beats every "
                               "other strategy's best seed: compare min with max, not the means.")
    if all(v is None for v in given.values()):
        return Feedback(False, "No cell has a winner in your answer, but some do: find the cells where the best strategy's "
                               "min is above every other strategy's max.")
    if given == _clear_winners(runs, metric, rivals="second"):
        return Feedback(False, "You compared the best strategy with the runner-up by mean only. Another strategy can have a "
                               "lower mean and a higher best seed: compare with the max of every other strategy.")
    wrong = [f"{k}: {given[k]!r} (expected {right[k]!r})" for k in right if given[k] != right[k]]
    return Feedback(False, f"Not every cell is right: {'; '.join(wrong[:3])}.")


__all__ = ["clear_winners", "seed_spread"]
