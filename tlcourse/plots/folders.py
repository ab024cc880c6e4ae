"""A photo folder at a glance: how many usable images each class has (the imbalance check's chart)."""
from __future__ import annotations

from collections.abc import Mapping

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._checks import positive_number
from ..errors import InvalidParameterError
from ._figures import one_axes, wrap

BALANCED, OUTLIER = "#4c9a2a", "tab:red"


def plot_class_counts(counts: Mapping[str, int], *, imbalance_ratio: float = 3.0, ax: Axes | None = None) -> Figure:
    """Horizontal bars of images per class, classes in the folder's order.

    A class is drawn in red when the largest class has more than ``imbalance_ratio`` times its
    images (the rare classes a plain accuracy hides), and the title gives the smallest and
    largest count, so the chart says at once whether per-class metrics are needed.
    """
    where = "plot_class_counts"
    if not isinstance(counts, Mapping) or not counts:
        raise InvalidParameterError(f"{where}: counts must be a non-empty mapping class -> images, got {counts!r:.60}.")
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in counts.values()):
        raise InvalidParameterError(f"{where}: every count must be an integer >= 0, got {dict(counts)!r:.80}.")
    imbalance_ratio = positive_number(imbalance_ratio, "imbalance_ratio")
    names, values = list(counts), list(counts.values())
    top = max(values)
    colours = [OUTLIER if top > imbalance_ratio * n else BALANCED for n in values]
    fig, ax = one_axes(ax, (7.0, max(2.5, 0.32 * len(names) + 1.2)), where)
    ax.barh(range(len(names)), values, color=colours)
    ax.set_yticks(range(len(names)), [wrap(n, 32) for n in names], fontsize=8)
    ax.invert_yaxis()
    for i, n in enumerate(values):
        ax.text(n, i, f" {n}", va="center", fontsize=8)
    ax.set_xlabel("usable images")
    flagged = sum(c == OUTLIER for c in colours)
    note = f"; red: {flagged} class(es) with under 1/{imbalance_ratio:g} of the largest" if flagged else ""
    ax.set_title(f"{min(values)} to {top} images per class{note}", fontsize=10)
    return fig


__all__ = ["plot_class_counts"]
