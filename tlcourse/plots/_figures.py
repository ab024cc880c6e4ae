"""Figure plumbing every family of plots shares: new figures detached from pyplot, the
caller's ``ax``, grids of image panels, and labels that fit.

Private to :mod:`tlcourse.plots`; the names carry no underscore so the families can import
them without reaching into another module's private names.
"""
from __future__ import annotations

import math
import re
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InvalidParameterError

#: title colours of a wrong and a right prediction, the same in every plot
WRONG = "tab:red"
RIGHT = "black"


def detach(fig: Figure) -> Figure:
    """Remove ``fig`` from pyplot's registry: the caller owns it, the inline backend won't
    auto-show it (no double display), and it still draws and saves normally."""
    plt.close(fig)
    return fig


def new_figure(nrows: int, ncols: int, cell: tuple[float, float], extra_h: float = 0.0) -> tuple[Figure, np.ndarray]:
    """A detached ``nrows x ncols`` figure sized ``cell`` inches per panel (always a 2-D array)."""
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(max(cell[0] * ncols, 3.0), max(cell[1] * nrows + extra_h, 2.0)),
        squeeze=False,
        layout="constrained",
    )
    return detach(fig), axes


def root_figure(ax: Axes) -> Figure:
    """The top figure ``ax`` is drawn in (not a subfigure): what a plot returns."""
    try:
        return ax.get_figure(root=True)  # matplotlib >= 3.10: the top figure, not a subfigure
    except TypeError:  # pragma: no cover - older matplotlib
        return ax.figure


def one_axes(ax: Axes | None, figsize: tuple[float, float], where: str) -> tuple[Figure, Axes]:
    """The caller's ``ax`` (and its figure) or a new single-panel figure."""
    if ax is None:
        fig, axes = plt.subplots(figsize=figsize, layout="constrained")
        return detach(fig), axes
    if not isinstance(ax, Axes):
        raise InvalidParameterError(
            f"{where}: ax must be a matplotlib Axes (e.g. from fig, ax = plt.subplots()), "
            f"got {type(ax).__name__}. Leave ax=None to get a new figure."
        )
    return root_figure(ax), ax


def grid(n: int, ncols: int, cell: tuple[float, float], extra_h: float = 0.0) -> tuple[Figure, list[Axes]]:
    """A figure with exactly ``n`` panels laid out ``ncols`` wide (unused slots removed)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols, cell, extra_h)
    flat = list(axes.ravel())
    for spare in flat[n:]:
        fig.delaxes(spare)
    return fig, flat[:n]


def show_image(ax: Axes, image: np.ndarray) -> None:
    """Draw a display array (see :func:`._inputs.as_display_image`) without ticks."""
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])


def wrap(text: Any, width: int = 22) -> str:
    """Long class names (``Tomato__Tomato_YellowLeaf__Curl_Virus``) on several short lines."""
    text = str(text)
    if len(text) <= width:
        return text
    # break after spaces and after runs of underscores (PlantVillage's "spaces"), never inside a word
    pieces = re.split(r"(?<=[_\s])(?=[^_\s])", text)
    lines, line = [], ""
    for piece in pieces:
        if line and len(line + piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = piece
        else:
            line += piece
    lines.append(line.rstrip())
    return "\n".join(lines)


__all__ = ["RIGHT", "WRONG", "detach", "grid", "new_figure", "one_axes", "root_figure", "show_image", "wrap"]
