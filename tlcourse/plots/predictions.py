"""Images, their labels and a model's predictions: look at the data, see the top classes,
and find where the model errs (the confusion matrix and the misclassified images)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from .._checks import int_at_least
from ..errors import InvalidParameterError
from ..metrics import confusion_counts
from ._figures import RIGHT, WRONG, grid, new_figure, one_axes, show_image, wrap
from ._inputs import as_class_names, as_display_images, as_probabilities, class_indices


def plot_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    class_names: Sequence[str],
    normalize: bool = True,
    ax: Axes | None = None,
    annotate: bool | None = None,
) -> Figure:
    """Which classes get confused with which: rows are the true class, columns the prediction.

    ``normalize=True`` colours each row by the share of that class's images (so rare classes
    are as visible as common ones); the numbers in the cells stay image counts. Cells are
    annotated when there are at most 20 classes (``annotate`` forces it on or off).
    """
    where = "plot_confusion_matrix"
    names = as_class_names(class_names, where)
    k = len(names)
    counts = confusion_counts(y_true, y_pred, k)
    total = int(counts.sum())
    if total == 0:
        raise InvalidParameterError(f"{where}: y_true and y_pred are empty; nothing to count.")
    if normalize:
        shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        vmax = 1.0
    else:
        shown = counts.astype(float)
        vmax = max(float(counts.max()), 1.0)
    side = max(4.5, 0.42 * k + 3.0)
    fig, ax = one_axes(ax, (side + 1.0, side), where)
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=vmax)
    ticks = np.arange(k)
    ax.set_xticks(ticks, [wrap(n, 28) for n in names], rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(ticks, [wrap(n, 28) for n in names], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if annotate is None:
        annotate = k <= 20
    if annotate:
        for t in range(k):
            for p in range(k):
                if counts[t, p]:
                    ax.text(
                        p, t, str(counts[t, p]), ha="center", va="center", fontsize=7,
                        color="white" if shown[t, p] > 0.55 * vmax else "black",
                    )
    accuracy = np.trace(counts) / total
    ax.set_title(
        f"Confusion matrix: {accuracy:.1%} correct on {total} images\n(off-diagonal = mistakes; "
        f"colour = {'share of the true class' if normalize else 'image count'}, numbers = images)",
        fontsize=10,
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                 label="share of the true class" if normalize else "images")
    return fig


def plot_misclassified(
    images_uint8: Any,
    y_true: Any,
    y_pred: Any,
    class_names: Sequence[str],
    probs: Any = None,
    max_images: int = 16,
    ncols: int = 4,
) -> Figure:
    """The images the model got wrong, titled "true / predicted" in red.

    With ``probs`` the most confident mistakes come first: those are the interesting ones
    (a label error in the data, a look-alike class, or a shortcut the model learned).
    """
    where = "plot_misclassified"
    names = as_class_names(class_names, where)
    max_images = int_at_least(max_images, "max_images", 1, where=where)
    ncols = int_at_least(ncols, "ncols", 1, where=where)
    pictures = as_display_images(images_uint8, where)
    t = class_indices(y_true, len(pictures), len(names), "y_true", where)
    p = class_indices(y_pred, len(pictures), len(names), "y_pred", where)
    confidence = None if probs is None else as_probabilities(probs, len(pictures), len(names), where)
    wrong = np.flatnonzero(t != p)
    if confidence is not None:
        wrong = wrong[np.argsort(-confidence[wrong, p[wrong]], kind="stable")]
    if wrong.size == 0:
        fig, ax = one_axes(None, (4.0, 2.0), where)
        ax.axis("off")
        ax.text(0.5, 0.5, f"No misclassified images among {len(pictures)}.", ha="center", va="center")
        ax.set_title("Misclassified images")
        return fig
    chosen = wrong[:max_images]
    fig, panels = grid(len(chosen), ncols, (2.4, 2.7), extra_h=0.4)
    for panel, i in zip(panels, chosen):
        show_image(panel, pictures[i])
        pred = wrap(names[p[i]])
        if confidence is not None:
            pred += f" ({confidence[i, p[i]]:.0%})"
        panel.set_title(f"true: {wrap(names[t[i]])}\npred: {pred}", color=WRONG, fontsize=8)
    order = "most confident first" if confidence is not None else "in dataset order"
    fig.suptitle(
        f"{len(chosen)} of {wrong.size} misclassified images ({wrong.size}/{len(pictures)} wrong; {order})",
        fontsize=10,
    )
    return fig


def plot_image_grid(
    images_uint8: Any,
    labels: Any,
    class_names: Sequence[str] | None,
    ncols: int = 8,
    max_images: int = 64,
) -> Figure:
    """A grid of images titled with their class: the "look at your data" step.

    Look for what a model could exploit: backgrounds, borders, lighting, duplicates.
    ``labels=None`` shows the images untitled. At most ``max_images`` are drawn (the figure
    title says how many of how many).
    """
    where = "plot_image_grid"
    ncols = int_at_least(ncols, "ncols", 1, where=where)
    max_images = int_at_least(max_images, "max_images", 1, where=where)
    pictures = as_display_images(images_uint8, where)
    names = None
    if labels is not None:
        if class_names is None:
            raise InvalidParameterError(f"{where}: labels were given without class_names to name them.")
        names = as_class_names(class_names, where)
        label_arr = class_indices(labels, len(pictures), len(names), "labels", where)
    shown = pictures[:max_images]
    fig, panels = grid(len(shown), ncols, (1.7, 1.95), extra_h=0.35)
    for i, (panel, picture) in enumerate(zip(panels, shown)):
        show_image(panel, picture)
        if names is not None:
            panel.set_title(wrap(names[label_arr[i]], 20), fontsize=7)
    fig.suptitle(f"{len(shown)} of {len(pictures)} images", fontsize=10)
    return fig


def show_predictions(
    images_uint8: Any,
    probs: Any,
    class_names: Sequence[str],
    k: int = 5,
    labels: Any = None,
) -> Figure:
    """Each image next to a bar chart of its top-``k`` classes and their probabilities.

    A pretrained ImageNet model is confident on ImageNet-like photos and spreads its
    probability on images far from ImageNet (X-rays, leaves): the starting point of the course.
    ``labels`` (true classes, optional) colour the correct class's bar green.
    """
    where = "show_predictions"
    names = as_class_names(class_names, where)
    k = int_at_least(k, "k", 1, where=where)
    k = min(k, len(names))
    pictures = as_display_images(images_uint8, where)
    p = as_probabilities(probs, len(pictures), len(names), where)
    truth = None if labels is None else class_indices(labels, len(pictures), len(names), "labels", where)
    fig, axes = new_figure(len(pictures), 2, (3.6, 0.35 * k + 1.5))
    for i, picture in enumerate(pictures):
        image_ax, bar_ax = axes[i]
        show_image(image_ax, picture)
        top = np.argsort(-p[i], kind="stable")[:k]
        first = wrap(names[top[0]], 26)
        colour = RIGHT if truth is None or top[0] == truth[i] else WRONG
        title = f"top-1: {first} ({p[i, top[0]]:.0%})"
        if truth is not None:
            title = f"true: {wrap(names[truth[i]], 26)}\n" + title
        image_ax.set_title(title, fontsize=8, color=colour)
        bars = ["#1f77b4"] * len(top)
        if truth is not None:
            bars = ["#2ca02c" if c == truth[i] else "#1f77b4" for c in top]
        bar_ax.barh(np.arange(len(top)), p[i, top], color=bars)
        bar_ax.set_yticks(np.arange(len(top)), [wrap(names[c], 26) for c in top], fontsize=7)
        bar_ax.invert_yaxis()
        bar_ax.set_xlim(0, 1)
        bar_ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        bar_ax.set_xlabel("probability", fontsize=8)
        bar_ax.set_title(f"top-{len(top)} classes", fontsize=8)
        for y, value in enumerate(p[i, top]):
            bar_ax.text(min(value + 0.02, 0.85), y, f"{value:.1%}", va="center", fontsize=7)
    return fig


__all__ = ["plot_confusion_matrix", "plot_image_grid", "plot_misclassified", "show_predictions"]
