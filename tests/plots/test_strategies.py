"""Experiment tables as figures: an annotated heatmap of a decision matrix."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tlcourse import plots as vis
from tlcourse.errors import CourseError, InvalidParameterError

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
