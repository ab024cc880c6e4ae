"""plot_reliability: one line per model, the diagonal, ECE in the legend."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from tlcourse import plots as vis
from tlcourse.calibration import expected_calibration_error
from tlcourse.errors import InvalidParameterError


def test_reliability_diagram_lines_and_legend():
    p = torch.tensor([0.95, 0.95, 0.95, 0.95, 0.35, 0.35], dtype=torch.float64)
    probs = torch.stack([1 - p, p], 1)
    labels = torch.tensor([1, 1, 1, 0, 0, 1])
    soft = torch.stack([1 - (0.5 + (p - 0.5) / 2), 0.5 + (p - 0.5) / 2], 1)
    fig = vis.plot_reliability({"before": probs, "after": soft}, labels, n_bins=10, title="t")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0] == "perfectly calibrated"
    assert texts[1] == f"before (ECE {expected_calibration_error(probs, labels, 10):.3f})"
    assert len(ax.lines) == 3 and ax.get_title() == "t"
    xs = ax.lines[1].get_xdata()
    assert list(xs) == pytest.approx([0.65, 0.95])  # the two non-empty bins, in order
    with pytest.raises(InvalidParameterError, match="dict"):
        vis.plot_reliability([probs], labels)
    with pytest.raises(InvalidParameterError, match="logits"):
        vis.plot_reliability({"x": torch.tensor([[3.0, 1.0]])}, [0])
    plt.close("all")
