"""Each recorded result across seeds: per notebook and combination of the other grid keys,
how many runs finished, and the mean, standard deviation, minimum and maximum of every number
the notebook recorded with :func:`tlcourse.course.results.record`."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .summary import SweepSummary

SEED = "seed"
COLUMNS = ["notebook", "combination", "result", "runs", "mean", "std", "min", "max"]


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def group_keys(summary: SweepSummary) -> list[str]:
    """The grid keys a group shares: every key but ``seed`` (the one runs are repeated over)."""
    return [name for name in summary.grid if name != SEED]


def finished_values(summary: SweepSummary) -> pd.DataFrame:
    """One row per (ok task, numeric result): notebook, grid values, result, value. A value
    recorded under the name of a parameter the task was given (``seed``) is that parameter
    echoed, not a result, and is left out."""
    rows = []
    for result in summary.notebooks:
        if result.status != "ok":
            continue
        task = summary.task(result.name)
        for name, value in (result.results.get("values") or {}).items():
            if _is_number(value) and name not in task.parameters:  # not an echoed parameter
                rows.append({"notebook": task.notebook, "grid": task.grid, "result": name,
                             "value": float(value)})
    return pd.DataFrame(rows)


def _combination(grid: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={grid[k]!r}" for k in keys if k in grid) or "(all runs)"


def across_seeds(summary: SweepSummary) -> pd.DataFrame:
    """The aggregated table, in :data:`COLUMNS` (``std`` is NaN for a single run)."""
    values = finished_values(summary)
    if values.empty:
        return pd.DataFrame(columns=COLUMNS)
    keys = group_keys(summary)
    values["combination"] = [_combination(g, keys) for g in values["grid"]]
    order = {name: i for i, name in enumerate(dict.fromkeys(values["combination"]))}
    table = (values.groupby(["notebook", "combination", "result"], sort=False)["value"]
             .agg(runs="count", mean="mean", std="std", min="min", max="max").reset_index())
    table["_order"] = table["combination"].map(order)
    return table.sort_values(["notebook", "_order"], kind="stable")[COLUMNS].reset_index(drop=True)
