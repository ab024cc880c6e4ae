"""The reliability diagram: how often a model is right, bin by bin of how sure it says it is."""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InvalidParameterError
from ._figures import one_axes


def plot_reliability(
    curves: dict[str, Any],
    labels: Any,
    n_bins: int = 10,
    title: str = "",
    ax: Axes | None = None,
) -> Figure:
    """One line per entry of ``curves`` (name -> ``(N, C)`` probabilities for the same ``labels``).

    Each point is a confidence bin: x its mean confidence, y its accuracy; the diagonal is
    perfect calibration, points below it are overconfident. The legend gives each curve's
    expected calibration error; a bar chart underneath would hide the bins' sizes, so each
    point's area grows with the number of predictions in its bin.
    """
    from ..calibration import expected_calibration_error, reliability_bins

    where = "plot_reliability"
    if not isinstance(curves, dict) or not curves:
        raise InvalidParameterError(f"{where}: curves must be a non-empty dict name -> probabilities, got {type(curves).__name__}.")
    fig, ax = one_axes(ax, (4.4, 4.2), where)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for name, probs in curves.items():
        bins = reliability_bins(probs, labels, n_bins)
        used = bins[bins["count"] > 0]
        ece = expected_calibration_error(probs, labels, n_bins)
        (line,) = ax.plot(used["confidence"], used["accuracy"], marker=None, label=f"{name} (ECE {ece:.3f})")
        sizes = 20 + 180 * np.asarray(used["count"], dtype=float) / float(bins["count"].sum())
        ax.scatter(used["confidence"], used["accuracy"], s=sizes, color=line.get_color(), zorder=3)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return fig


__all__ = ["plot_reliability"]
