"""Experiment tables as figures: an annotated heatmap of a decision matrix, and one cell of
the matrix as a bar per strategy (mean over seeds) with a dot per seed."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import PathCollection

from tlcourse import plots as vis
from tlcourse.data import get_info
from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.experiments import STRATEGIES, Run, column_label

DATASET = "pneumoniamnist"

pytestmark = pytest.mark.usefixtures("no_open_figures")


def test_heatmap():
    table = pd.DataFrame(
        [[0.9, 0.7, np.nan], [0.6, 0.8, 0.95]],
        index=pd.Index(["small data", "large data"], name="dataset size"),
        columns=pd.Index(["similar", "different", "very different"], name="domain"),
    )
    fig = vis.plot_heatmap(table, "Which recipe wins", fmt=".0%")
    ax = fig.axes[0]
    assert len(fig.axes) == 2 and ax.get_title() == "Which recipe wins"
    assert sorted(t.get_text() for t in ax.texts) == ["60%", "70%", "80%", "90%", "95%"]
    assert ax.get_xlabel() == "domain" and ax.get_ylabel() == "dataset size"
    with pytest.raises(InvalidParameterError, match="number"):
        vis.plot_heatmap(pd.DataFrame({"a": ["x", "y"]}), "t")
    with pytest.raises(CourseError, match="colormap"):
        vis.plot_heatmap(table, "t", cmap="viridiss")


def _runs_table() -> pd.DataFrame:
    """run_grid's table for one cell (3 images per class), three seeds per strategy: each row
    comes from a Run's own row(), with ``i + seed`` of ten test X-rays wrong for strategy i."""
    info = get_info(DATASET)
    labels = torch.tensor([0, 1] * 5)
    rows = []
    for i, strategy in enumerate(STRATEGIES):
        for seed in range(3):
            preds = labels.clone()
            preds[: i + seed] = 1 - preds[: i + seed]
            probs = torch.nn.functional.one_hot(preds, 2).float()
            rows.append(Run(DATASET, info.domain, strategy, 3, seed, 6, 0, 0.0, probs, labels).row())
    return pd.DataFrame(rows)


def test_strategies_bars_seeds_and_chance():
    table = _runs_table()
    fig = vis.plot_strategies(table, DATASET, 3)
    ax = fig.axes[0]
    means = table.groupby("strategy")["acc"].mean()
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([means[s] for s in STRATEGIES])
    assert [t.get_text() for t in ax.get_xticklabels()] == list(STRATEGIES.values())
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(d.get_offsets()) for d in dots] == [3] * len(STRATEGIES)  # one dot per seed
    chance = [line for line in ax.get_lines() if line.get_label().startswith("chance")]
    assert chance[0].get_ydata()[0] == pytest.approx(1 / len(get_info(DATASET).class_names))
    assert column_label(table, DATASET, 3) in ax.get_title() and "3 seed(s)" in ax.get_title()
    mine, (left, right) = plt.subplots(1, 2)
    plt.close(mine)
    assert vis.plot_strategies(table, DATASET, 3, "balanced_acc", ax=right) is mine
    assert right.get_ylabel() == "test balanced accuracy" and not left.patches
    with pytest.raises(CourseError, match="3/class"):
        vis.plot_strategies(table, DATASET, 10)
    with pytest.raises(CourseError, match="metric"):
        vis.plot_strategies(table, DATASET, 3, "f1")
    with pytest.raises(InvalidParameterError, match="run_grid's table"):
        vis.plot_strategies(table.to_dict("records"), DATASET, 3)
