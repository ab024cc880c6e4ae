"""Checkers for lesson 06 (the decision matrix): the spread of a result over seeds.

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


__all__ = ["seed_spread"]
