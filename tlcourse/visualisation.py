"""The course's plots: what a network learned, how training went, and where it errs.

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show()``:
a notebook displays the returned figure, a script can ``fig.savefig(...)``, and tests run
on the Agg backend. Figures are detached from pyplot's list of open figures as soon as they
are made, so Jupyter's inline backend does not show them twice (once automatically, once as
the cell's value) and long sessions do not pile up open figures. Functions that draw one
panel accept ``ax=`` to draw into a figure of your own; they then return that figure.

Images are passed as ``uint8`` tensors ``(N, C, H, W)`` or ``(C, H, W)`` (what the course's
datasets hold), a list of such tensors, PIL images, or ``uint8`` NumPy arrays ``(H, W, C)``.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter
from matplotlib.transforms import blended_transform_factory
from torch import nn

from .errors import CourseError, InvalidParameterError, unknown_name

#: colours shared by all plots so "trainable" and "frozen" look the same everywhere
STATUS_COLOURS = {"trainable": "#2ca02c", "partial": "#ff7f0e", "frozen": "#7f7f7f", "empty": "#d9d9d9"}
WRONG = "tab:red"
RIGHT = "black"

# ----------------------------------------------------------------------------- helpers


def _detach(fig: Figure) -> Figure:
    """Remove ``fig`` from pyplot's registry: the caller owns it, the inline backend won't
    auto-show it (no double display), and it still draws and saves normally."""
    plt.close(fig)
    return fig


def _figure(nrows: int, ncols: int, cell: tuple[float, float], extra_h: float = 0.0) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(max(cell[0] * ncols, 3.0), max(cell[1] * nrows + extra_h, 2.0)),
        squeeze=False,
        layout="constrained",
    )
    return _detach(fig), axes


def _root_figure(ax: Axes) -> Figure:
    try:
        return ax.get_figure(root=True)  # matplotlib >= 3.10: the top figure, not a subfigure
    except TypeError:  # pragma: no cover - older matplotlib
        return ax.figure


def _one_axes(ax: Axes | None, figsize: tuple[float, float], where: str) -> tuple[Figure, Axes]:
    """The caller's ``ax`` (and its figure) or a new single-panel figure."""
    if ax is None:
        fig, axes = plt.subplots(figsize=figsize, layout="constrained")
        return _detach(fig), axes
    if not isinstance(ax, Axes):
        raise InvalidParameterError(
            f"{where}: ax must be a matplotlib Axes (e.g. from fig, ax = plt.subplots()), "
            f"got {type(ax).__name__}. Leave ax=None to get a new figure."
        )
    return _root_figure(ax), ax


def _grid(n: int, ncols: int, cell: tuple[float, float], extra_h: float = 0.0) -> tuple[Figure, list[Axes]]:
    """A figure with exactly ``n`` panels laid out ``ncols`` wide (unused slots removed)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = _figure(nrows, ncols, cell, extra_h)
    flat = list(axes.ravel())
    for spare in flat[n:]:
        fig.delaxes(spare)
    return fig, flat[:n]


def _check_int(value: Any, name: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidParameterError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _wrap(text: Any, width: int = 22) -> str:
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


def _class_names(class_names: Any, where: str) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) or len(class_names) < 1:
        raise InvalidParameterError(
            f"{where}: class_names must be a list of class names (e.g. dataset.classes), got "
            f"{class_names!r:.80}."
        )
    return [str(c) for c in class_names]


def _to_numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _labels(values: Any, n: int | None, num_classes: int, what: str, where: str) -> np.ndarray:
    """Class indices as a 1-D int array, checked against ``n`` and the number of classes."""
    arr = _to_numpy(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidParameterError(
            f"{where}: {what} must be a 1-D sequence of class indices, got shape {arr.shape}. "
            "For probabilities or logits take .argmax(1) first."
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidParameterError(
                f"{where}: {what} must hold integer class indices, got dtype {arr.dtype}."
            )
    if n is not None and len(arr) != n:
        raise InvalidParameterError(f"{where}: {what} has {len(arr)} entries but there are {n} images/predictions.")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        bad = int(arr.min() if arr.min() < 0 else arr.max())
        raise InvalidParameterError(
            f"{where}: {what} contains class index {bad}, outside 0..{num_classes - 1} "
            f"(class_names has {num_classes} names). Pass the class names of the same dataset."
        )
    return arr.astype(np.int64)


def _probabilities(probs: Any, n: int, num_classes: int, where: str) -> np.ndarray:
    arr = _to_numpy(probs).astype(np.float64)
    if arr.ndim != 2 or arr.shape != (n, num_classes):
        raise InvalidParameterError(
            f"{where}: probs must have shape (images, classes) = ({n}, {num_classes}), got {arr.shape}."
        )
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6 or not np.allclose(arr.sum(1), 1.0, atol=1e-3):
        raise InvalidParameterError(
            f"{where}: probs must be probabilities (each row in [0, 1], summing to 1). These look "
            "like logits: pass logits.softmax(1) instead."
        )
    return arr


def _one_image(image: Any, where: str) -> np.ndarray:
    """One image as a NumPy ``uint8`` array ``(H, W, 3)`` or ``(H, W)`` for matplotlib."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with torchvision
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return np.asarray(image.convert("L" if image.mode in ("L", "I", "I;16", "F") else "RGB"))
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise InvalidParameterError(
                f"{where}: images must be uint8 (0-255), got a {image.dtype} tensor. Model inputs "
                "are normalised floats; to show them use (preprocessing.denormalize(x) * 255).byte()."
            )
        if image.ndim == 2:
            return image.cpu().numpy()
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise InvalidParameterError(
                f"{where}: an image tensor must be (C, H, W) with C = 1 or 3, got shape {tuple(image.shape)}."
            )
        arr = image.cpu().permute(1, 2, 0).numpy()
        return arr[..., 0] if arr.shape[2] == 1 else arr
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise InvalidParameterError(f"{where}: NumPy images must be uint8 (H, W, 3), got dtype {image.dtype}.")
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3):
            return image
        if image.ndim == 3 and image.shape[2] == 1:
            return image[..., 0]
        raise InvalidParameterError(f"{where}: NumPy images must be (H, W) or (H, W, 3), got {image.shape}.")
    raise InvalidParameterError(
        f"{where}: cannot show a {type(image).__name__}. Pass uint8 tensors (C, H, W), PIL images "
        "or uint8 NumPy arrays (H, W, 3)."
    )


def _image_list(images: Any, where: str) -> list[np.ndarray]:
    """A batch or list of images as a list of display arrays."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        items: Sequence[Any] = list(images)
    elif isinstance(images, torch.Tensor) and images.ndim in (2, 3):
        items = [images]
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        items = list(images)
    elif isinstance(images, np.ndarray):
        items = [images]
    elif isinstance(images, Sequence) and not isinstance(images, str):
        items = images
    else:
        items = [images]
    if len(items) == 0:
        raise InvalidParameterError(f"{where}: no images were given.")
    return [_one_image(img, where) for img in items]


def _show(ax: Axes, image: np.ndarray) -> None:
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextmanager
def _evaluation(model: nn.Module) -> Iterator[nn.Module]:
    """Put the model in eval mode and restore every submodule's own mode afterwards.

    Restoring module by module matters: a fine-tuning recipe may keep frozen BatchNorm layers
    in eval mode inside a model in train mode, and ``model.train()`` would undo that.
    """
    from .models.modes import evaluating

    with evaluating(model):
        yield model


def _as_model_input(image: Any, where: str) -> torch.Tensor:
    """PIL image or uint8 tensor/array -> uint8 tensor (3, H, W)."""
    arr = _one_image(image, where)
    tensor = torch.from_numpy(np.array(arr, copy=True))  # PIL arrays are read-only
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(-1).expand(-1, -1, 3)
    return tensor.permute(2, 0, 1).contiguous()


def _fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def _arch_name(model: nn.Module) -> str:
    try:
        from .models import spec_for

        return spec_for(model).name
    except CourseError:
        return type(model).__name__


# ----------------------------------------------------------------------------- what was learned


def first_rgb_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``nn.Conv2d`` that reads the 3 colour channels: the layer whose filters we can
    look at as small RGB images (deeper filters mix dozens of channels and cannot be drawn)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3 and module.groups == 1:
            return name, module
    raise CourseError(
        f"{type(model).__name__} has no nn.Conv2d with 3 input channels, so there are no RGB "
        "filters to draw. Pass an image model such as tlcourse.models.load_backbone('mobilenet_v2')."
    )


def plot_first_layer_filters(
    model: nn.Module, max_filters: int = 32, ncols: int = 8, ax: Axes | None = None
) -> Figure:
    """The first convolution's kernels as tiny RGB images, in one mosaic.

    A pretrained network's first layer holds oriented edges (Gabor-like) and colour blobs;
    a randomly initialised one holds noise. This is the first evidence that ImageNet features
    are generic, and why early stages are the safest to freeze. Each filter is min-max scaled
    on its own, so compare patterns, not brightness between filters.
    """
    where = "plot_first_layer_filters"
    max_filters = _check_int(max_filters, "max_filters", where)
    ncols = _check_int(ncols, "ncols", where)
    layer_name, conv = first_rgb_conv(model)
    weights = conv.weight.detach().float().cpu()[:max_filters]  # (F, 3, kh, kw)
    lo = weights.amin(dim=(1, 2, 3), keepdim=True)
    hi = weights.amax(dim=(1, 2, 3), keepdim=True)
    weights = (weights - lo) / (hi - lo).clamp_min(1e-12)
    count, _, kh, kw = weights.shape
    cols = min(ncols, count)
    rows = math.ceil(count / cols)
    pad = 1
    mosaic = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad, 3))
    for i, kernel in enumerate(weights.permute(0, 2, 3, 1).numpy()):
        r, c = divmod(i, cols)
        top, left = pad + r * (kh + pad), pad + c * (kw + pad)
        mosaic[top : top + kh, left : left + kw] = kernel
    fig, ax = _one_axes(ax, (0.75 * cols + 1.0, 0.75 * rows + 1.2), where)
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"First-layer filters of {_arch_name(model)} ({layer_name}): {count} of "
        f"{conv.out_channels}, {kh}x{kw} px\neach scaled to its own range "
        "(pretrained: edges and colour blobs; random: noise)",
        fontsize=9,
    )
    return fig


def plot_feature_maps(
    model: nn.Module,
    image: Any,
    preprocessing: Any,
    stages: str | Sequence[str] | None = None,
    channels: int = 8,
) -> Figure:
    """What each stage "sees": the input, then the ``channels`` most active maps per stage.

    The image is used at its own size (resize it first to the size you train at); it is only
    normalised with ``preprocessing``. One row per stage, labelled with the stage's output shape
    (channels x height x width): resolution falls and channels grow as we go deeper, from edge
    and colour detectors to sparse, object-part-like maps. "Most active" = highest mean
    activation over the map. Runs in eval mode without gradients; the model's modes are restored.
    """
    from .models import stage_sequence

    where = "plot_feature_maps"
    channels = _check_int(channels, "channels", where)
    if not hasattr(preprocessing, "normalize"):
        raise InvalidParameterError(
            f"{where}: preprocessing must be the Preprocessing returned by create_model "
            f"(it has .normalize), got {type(preprocessing).__name__}."
        )
    seq = stage_sequence(model)
    spatial = [name for name in seq if name != "head"]
    if stages is None:
        wanted = spatial
    else:
        wanted = [stages] if isinstance(stages, str) else list(stages)
        if not wanted:
            raise InvalidParameterError(f"{where}: stages is empty; pass None for all of {spatial}.")
        for name in wanted:
            if name == "head":
                raise InvalidParameterError(
                    f"{where}: the head outputs class scores, not feature maps. Pick from {spatial}."
                )
            if name not in spatial:
                raise unknown_name("stage", name, spatial)
    picture = _as_model_input(image, where)
    x = preprocessing.normalize(picture.unsqueeze(0)).to(_model_device(model))
    outputs: dict[str, torch.Tensor] = {}
    with _evaluation(model), torch.no_grad():
        for name, module in seq.items():
            if len(outputs) == len(set(wanted)):
                break
            x = module(x)
            if name in wanted:
                outputs[name] = x[0].float().cpu()
    shown = picture.permute(1, 2, 0).numpy()
    fig, axes = _figure(len(wanted), 1 + channels, (1.5, 1.65), extra_h=0.4)
    for row, name in enumerate(wanted):
        act = outputs[name]
        c, h, w = act.shape
        _show(axes[row, 0], shown)
        axes[row, 0].set_title(f"{name}\n{c}×{h}×{w}", fontsize=9, fontweight="bold")
        top = act.mean(dim=(1, 2)).topk(min(channels, c)).indices.tolist()
        for col in range(channels):
            panel = axes[row, col + 1]
            if col >= len(top):
                fig.delaxes(panel)
                continue
            panel.imshow(act[top[col]].numpy(), cmap="viridis", interpolation="nearest")
            panel.set_xticks([])
            panel.set_yticks([])
            panel.set_title(f"ch {top[col]}", fontsize=8)
    fig.suptitle(
        f"Feature maps of {_arch_name(model)}: per stage (output channels × height × width) the "
        f"{channels} most active channels; bright = strong response",
        fontsize=10,
    )
    return fig


# ----------------------------------------------------------------------------- training curves

_METRIC_LABELS = {
    "loss": "loss (cross-entropy, lower is better)",
    "acc": "accuracy",
    "lr": "learning rate",
    "seconds": "seconds per epoch",
}


def _history_records(history: Any, where: str) -> tuple[list[Mapping[str, Any]], str]:
    """Records (one mapping per epoch) and a default label, from any accepted history form."""
    label = ""
    if hasattr(history, "records"):
        records = list(history.records)
        label = str(getattr(history, "label", "") or "")
    elif hasattr(history, "to_dict") and hasattr(history, "columns"):  # a pandas DataFrame
        frame = history
        if "epoch" not in frame.columns and frame.index.name == "epoch":
            frame = frame.reset_index()
        records = frame.to_dict("records")
    elif isinstance(history, Sequence) and not isinstance(history, str):
        records = list(history)
    else:
        raise InvalidParameterError(
            f"{where}: cannot read a history from a {type(history).__name__}. Pass the History "
            "returned by tlcourse.training.fit, a list of per-epoch dicts, or a DataFrame."
        )
    if not records:
        raise InvalidParameterError(f"{where}: a history is empty (no finished epoch to plot).")
    for r in records:
        if not isinstance(r, Mapping):
            raise InvalidParameterError(
                f"{where}: each epoch record must be a dict like {{'epoch': 1, 'train_loss': ...}}, "
                f"got {type(r).__name__}."
            )
    return records, label


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and values of ``key`` (missing or NaN values dropped)."""
    xs, ys = [], []
    for i, r in enumerate(records):
        value = r.get(key)
        if value is None:
            continue
        value = float(value)
        if math.isnan(value):
            continue
        epoch = r.get("epoch", i + 1)
        xs.append(float(i + 1 if epoch is None or (isinstance(epoch, float) and math.isnan(epoch)) else epoch))
        ys.append(value)
    return np.asarray(xs), np.asarray(ys)


def plot_history(
    *histories: Any,
    labels: Sequence[str] | None = None,
    metrics: str | Sequence[str] = ("loss", "acc"),
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Training curves, train (dashed) and validation (solid), one panel per metric.

    Pass several runs to compare them in one figure (e.g. scratch vs pretrained); each run
    gets one colour. The best epoch (lowest validation loss) is starred: the epoch whose
    weights early stopping keeps. A widening gap between train and validation is overfitting.
    """
    where = "plot_history"
    if not histories:
        raise InvalidParameterError(f"{where}: pass at least one history, e.g. plot_history(history).")
    metric_list = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metric_list:
        raise InvalidParameterError(f"{where}: metrics is empty; use e.g. ('loss', 'acc').")
    runs = [_history_records(h, where) for h in histories]
    if labels is None:
        names = [lab or (f"run {i + 1}" if len(runs) > 1 else "") for i, (_, lab) in enumerate(runs)]
    else:
        names = [str(s) for s in ([labels] if isinstance(labels, str) else labels)]
        if len(names) != len(runs):
            raise InvalidParameterError(f"{where}: {len(names)} labels for {len(runs)} histories; give one label per run.")
    if ax is None:
        fig, grid = _figure(1, len(metric_list), (4.6, 3.4))
        panels = list(grid[0])
    else:
        given = [ax] if isinstance(ax, Axes) else list(ax)
        if len(given) != len(metric_list) or not all(isinstance(a, Axes) for a in given):
            raise InvalidParameterError(f"{where}: ax must be {len(metric_list)} Axes, one per metric {metric_list}.")
        panels = given
        fig = _root_figure(given[0])
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    for metric, panel in zip(metric_list, panels):
        drawn = False
        starred = False
        for i, ((records, _), name) in enumerate(zip(runs, names)):
            colour = colours[i % len(colours)]
            prefix = f"{name}: " if name else ""
            for split, style, word in (("train", "--", "train"), ("val", "-", "validation")):
                xs, ys = _series(records, f"{split}_{metric}")
                if len(xs):
                    panel.plot(xs, ys, style, color=colour, marker="o", ms=3, label=f"{prefix}{word}")
                    drawn = True
            xs, ys = _series(records, metric)
            if len(xs):
                panel.plot(xs, ys, "-", color=colour, marker="o", ms=3, label=name or metric)
                drawn = True
            ex, ev = _series(records, "val_loss")
            if len(ex):
                best = float(ex[int(np.argmin(ev))])
                mx, my = _series(records, f"val_{metric}")
                if not len(mx):
                    mx, my = _series(records, metric)
                hit = np.flatnonzero(mx == best)
                panel.axvline(best, color=colour, ls=":", lw=1, alpha=0.7)
                if hit.size:
                    panel.plot(
                        [best], [my[hit[0]]], marker="*", ms=14, color=colour, ls="none",
                        markeredgecolor="black", label=None if starred else "best epoch (lowest val loss)",
                    )
                    starred = True
        if not drawn:
            keys = sorted({k for records, _ in runs for r in records for k in r})
            raise InvalidParameterError(
                f"{where}: no history has {metric!r} (looked for train_{metric}, val_{metric}, "
                f"{metric}). Available keys: {', '.join(keys)}."
            )
        panel.set_xlabel("epoch")
        panel.set_ylabel(_METRIC_LABELS.get(metric, metric))
        panel.set_title(f"{_METRIC_LABELS.get(metric, metric).split(' (')[0].capitalize()} per epoch")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        if metric == "lr":
            panel.set_yscale("log")
        panel.grid(alpha=0.3)
        panel.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------- errors


def confusion_counts(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """``counts[t, p]`` = how many images of true class ``t`` were predicted as ``p``."""
    where = "confusion_counts"
    num_classes = _check_int(num_classes, "num_classes", where)
    t = _labels(y_true, None, num_classes, "y_true", where)
    p = _labels(y_pred, len(t), num_classes, "y_pred", where)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (t, p), 1)
    return counts


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
    names = _class_names(class_names, where)
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
    fig, ax = _one_axes(ax, (side + 1.0, side), where)
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=vmax)
    ticks = np.arange(k)
    ax.set_xticks(ticks, [_wrap(n, 28) for n in names], rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(ticks, [_wrap(n, 28) for n in names], fontsize=8)
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
    names = _class_names(class_names, where)
    max_images = _check_int(max_images, "max_images", where)
    ncols = _check_int(ncols, "ncols", where)
    pictures = _image_list(images_uint8, where)
    t = _labels(y_true, len(pictures), len(names), "y_true", where)
    p = _labels(y_pred, len(pictures), len(names), "y_pred", where)
    confidence = None if probs is None else _probabilities(probs, len(pictures), len(names), where)
    wrong = np.flatnonzero(t != p)
    if confidence is not None:
        wrong = wrong[np.argsort(-confidence[wrong, p[wrong]], kind="stable")]
    if wrong.size == 0:
        fig, ax = _one_axes(None, (4.0, 2.0), where)
        ax.axis("off")
        ax.text(0.5, 0.5, f"No misclassified images among {len(pictures)}.", ha="center", va="center")
        ax.set_title("Misclassified images")
        return fig
    chosen = wrong[:max_images]
    fig, panels = _grid(len(chosen), ncols, (2.4, 2.7), extra_h=0.4)
    for panel, i in zip(panels, chosen):
        _show(panel, pictures[i])
        pred = _wrap(names[p[i]])
        if confidence is not None:
            pred += f" ({confidence[i, p[i]]:.0%})"
        panel.set_title(f"true: {_wrap(names[t[i]])}\npred: {pred}", color=WRONG, fontsize=8)
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
    ncols = _check_int(ncols, "ncols", where)
    max_images = _check_int(max_images, "max_images", where)
    pictures = _image_list(images_uint8, where)
    names = None
    if labels is not None:
        if class_names is None:
            raise InvalidParameterError(f"{where}: labels were given without class_names to name them.")
        names = _class_names(class_names, where)
        label_arr = _labels(labels, len(pictures), len(names), "labels", where)
    shown = pictures[:max_images]
    fig, panels = _grid(len(shown), ncols, (1.7, 1.95), extra_h=0.35)
    for i, (panel, picture) in enumerate(zip(panels, shown)):
        _show(panel, picture)
        if names is not None:
            panel.set_title(_wrap(names[label_arr[i]], 20), fontsize=7)
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
    names = _class_names(class_names, where)
    k = _check_int(k, "k", where)
    k = min(k, len(names))
    pictures = _image_list(images_uint8, where)
    p = _probabilities(probs, len(pictures), len(names), where)
    truth = None if labels is None else _labels(labels, len(pictures), len(names), "labels", where)
    fig, axes = _figure(len(pictures), 2, (3.6, 0.35 * k + 1.5))
    for i, picture in enumerate(pictures):
        image_ax, bar_ax = axes[i]
        _show(image_ax, picture)
        top = np.argsort(-p[i], kind="stable")[:k]
        first = _wrap(names[top[0]], 26)
        colour = RIGHT if truth is None or top[0] == truth[i] else WRONG
        title = f"top-1: {first} ({p[i, top[0]]:.0%})"
        if truth is not None:
            title = f"true: {_wrap(names[truth[i]], 26)}\n" + title
        image_ax.set_title(title, fontsize=8, color=colour)
        bars = ["#1f77b4"] * len(top)
        if truth is not None:
            bars = ["#2ca02c" if c == truth[i] else "#1f77b4" for c in top]
        bar_ax.barh(np.arange(len(top)), p[i, top], color=bars)
        bar_ax.set_yticks(np.arange(len(top)), [_wrap(names[c], 26) for c in top], fontsize=7)
        bar_ax.invert_yaxis()
        bar_ax.set_xlim(0, 1)
        bar_ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        bar_ax.set_xlabel("probability", fontsize=8)
        bar_ax.set_title(f"top-{len(top)} classes", fontsize=8)
        for y, value in enumerate(p[i, top]):
            bar_ax.text(min(value + 0.02, 0.85), y, f"{value:.1%}", va="center", fontsize=7)
    return fig


# ----------------------------------------------------------------------------- transfer recipes


def stage_summary(model: nn.Module) -> "OrderedDict[str, dict[str, Any]]":
    """Per stage: parameters, trainable parameters, status and BatchNorm layers in train mode.

    The numbers behind :func:`plot_stage_diagram`, handy to print or assert on.
    """
    from .models import stage_modules, stage_of_parameters

    params = dict(model.named_parameters())
    summary: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for stage, modules in stage_modules(model).items():
        norms = [
            m for root in modules for m in root.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]
        summary[stage] = {
            "params": 0,
            "trainable": 0,
            "batchnorm": len(norms),
            "batchnorm_training": sum(bool(m.training) for m in norms),
        }
    for name, stage in stage_of_parameters(model).items():
        n = params[name].numel()
        summary[stage]["params"] += n
        if params[name].requires_grad:
            summary[stage]["trainable"] += n
    for row in summary.values():
        if row["params"] == 0:
            row["status"] = "empty"
        elif row["trainable"] == row["params"]:
            row["status"] = "trainable"
        elif row["trainable"] == 0:
            row["status"] = "frozen"
        else:
            row["status"] = "partial"
    return summary


def plot_stage_diagram(model: nn.Module, ax: Axes | None = None) -> Figure:
    """The model as a stack of stages: which are trainable, frozen or partly frozen.

    Bar length is the stage's parameter count (log scale; the number is written on it).
    Hatched bars contain BatchNorm layers in train mode: their running statistics change on
    every batch even when their weights are frozen, a classic fine-tuning trap. Call it after
    ``model.train()`` to see what training will actually do.
    """
    where = "plot_stage_diagram"
    summary = stage_summary(model)
    stages = list(summary)
    fig, ax = _one_axes(ax, (9.0, 0.45 * len(stages) + 2.2), where)
    totals = np.array([max(summary[s]["params"], 1) for s in stages], dtype=float)
    # the notes sit in a column right of the bars: x in axes fraction, y in data (stage) units
    notes = blended_transform_factory(ax.transAxes, ax.transData)
    for y, stage in enumerate(stages):
        row = summary[stage]
        hatch = "///" if row["batchnorm_training"] else None
        ax.barh(y, totals[y], color=STATUS_COLOURS[row["status"]], hatch=hatch, edgecolor="black", lw=0.6)
        text = f"{_fmt_count(row['params'])} params, {row['status']}"
        if row["status"] == "partial":
            text += f" ({_fmt_count(row['trainable'])} trainable)"
        trap = row["batchnorm_training"] and row["status"] != "trainable"
        if trap:
            text += f"\n{row['batchnorm_training']} BatchNorm in train mode: stats still update!"
        elif row["batchnorm_training"]:
            text += f", {row['batchnorm_training']} BatchNorm in train mode"
        ax.text(1.02, y, text, transform=notes, va="center", fontsize=8, color=WRONG if trap else "black")
    ax.set_xscale("log")
    ax.set_xlim(1, totals.max() * 3)
    ax.set_yticks(np.arange(len(stages)), stages)
    ax.invert_yaxis()  # input at the top, head at the bottom: the order data flows
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("stage (input → output)")
    total = sum(r["params"] for r in summary.values())
    trainable = sum(r["trainable"] for r in summary.values())
    ax.set_title(
        f"{_arch_name(model)}: {_fmt_count(trainable)} of {_fmt_count(total)} parameters trainable "
        f"({trainable / max(total, 1):.1%})\nmodel in {'train' if model.training else 'eval'} mode",
        fontsize=10,
    )
    present = {r["status"] for r in summary.values()}
    handles = [Patch(color=STATUS_COLOURS[s], label=s) for s in ("trainable", "partial", "frozen", "empty") if s in present]
    if any(r["batchnorm_training"] for r in summary.values()):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="BatchNorm in train mode"))
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(handles), frameon=False)
    return fig


def plot_lr_per_stage(optimizer_or_param_groups: Any, ax: Axes | None = None) -> Figure:
    """The learning rate of each parameter group (log scale), labelled by stage.

    Discriminative learning rates give early, generic stages small steps and the new head big
    ones; this makes the schedule visible. A group at lr 0 is marked "0 (frozen)".
    """
    where = "plot_lr_per_stage"
    groups = getattr(optimizer_or_param_groups, "param_groups", optimizer_or_param_groups)
    if isinstance(groups, Mapping) or not isinstance(groups, Sequence) or not groups:
        raise InvalidParameterError(
            f"{where}: pass an optimizer or a non-empty list of parameter-group dicts with an "
            f"'lr' key, got {type(optimizer_or_param_groups).__name__}."
        )
    labels: list[str] = []
    rates: list[float] = []
    for i, group in enumerate(groups):
        if not isinstance(group, Mapping) or "lr" not in group:
            raise InvalidParameterError(f"{where}: parameter group {i} has no 'lr' key: {group!r:.80}.")
        lr = float(group["lr"])
        if not math.isfinite(lr) or lr < 0:
            raise InvalidParameterError(f"{where}: parameter group {i} has lr={lr}; learning rates are >= 0.")
        base = str(group.get("stage") or group.get("name") or f"group {i}")
        label, n = base, 2
        while label in labels:  # e.g. a stage split into decay / no-decay groups
            label, n = f"{base} ({n})", n + 1
        labels.append(label)
        rates.append(lr)
    fig, ax = _one_axes(ax, (max(4.5, 0.7 * len(labels) + 2.0), 3.6), where)
    xs = np.arange(len(labels))
    positive = [r for r in rates if r > 0]
    floor = min(positive) / 10 if positive else 1e-8
    ax.bar(xs, [r if r > 0 else np.nan for r in rates], color="#1f77b4", bottom=0)
    if positive:
        ax.set_yscale("log")
        ax.set_ylim(floor, max(positive) * 5)
    for x, r in zip(xs, rates):
        ax.text(x, r * 1.15 if r > 0 else floor * 1.5, f"{r:.1e}" if r > 0 else "0\n(frozen)",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, labels, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_xlabel("parameter group (input → output)")
    ax.set_ylabel("learning rate (log scale)")
    ax.set_title("Learning rate per stage", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


# ----------------------------------------------------------------------------- experiment tables


def plot_learning_curve(
    results: Any,
    metric: str = "accuracy",
    spread: str = "minmax",
    ax: Axes | None = None,
) -> Figure:
    """Accuracy against images per class (log x), one line per method.

    The line is the mean over seeds; the band shows the spread over seeds (``"minmax"`` or
    ``"std"``), so a learner sees which differences are larger than the seed-to-seed noise.
    Pretrained features win most where data is scarce: the left of this plot.
    """
    where = "plot_learning_curve"
    if not (hasattr(results, "columns") and hasattr(results, "groupby")):
        raise InvalidParameterError(
            f"{where}: results must be a pandas DataFrame with columns n_per_class, {metric} "
            f"[, method, seed], got {type(results).__name__}."
        )
    missing = [c for c in ("n_per_class", metric) if c not in results.columns]
    if missing:
        raise InvalidParameterError(
            f"{where}: results lacks column(s) {missing}; it has {list(results.columns)}."
        )
    if spread not in ("minmax", "std"):
        raise unknown_name("spread", spread, ["minmax", "std"])
    if len(results) == 0:
        raise InvalidParameterError(f"{where}: results is empty.")
    frame = results.copy()
    if "method" not in frame.columns:
        frame["method"] = metric
    fig, ax = _one_axes(ax, (6.0, 4.0), where)
    multi_seed = False
    for method, sub in frame.groupby("method", sort=False):
        stats = sub.groupby("n_per_class")[metric].agg(["mean", "min", "max", "std", "count"]).sort_index()
        xs = stats.index.to_numpy(dtype=float)
        line = ax.plot(xs, stats["mean"], marker="o", label=str(method))[0]
        if (stats["count"] > 1).any():
            multi_seed = True
            if spread == "minmax":
                lo, hi = stats["min"], stats["max"]
            else:
                sd = stats["std"].fillna(0.0)
                lo, hi = stats["mean"] - sd, stats["mean"] + sd
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    ns = np.sort(frame["n_per_class"].unique())
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(int(n)) if float(n).is_integer() else str(n) for n in ns])
    ax.minorticks_off()
    values = frame[metric].to_numpy(dtype=float)
    if np.nanmax(values) <= 1.0 and np.nanmin(values) >= 0.0:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("training images per class (log scale)")
    ax.set_ylabel(metric)
    seeds = f"{frame['seed'].nunique()} seeds" if "seed" in frame.columns else "runs"
    band = "min–max" if spread == "minmax" else "±1 std"
    note = f"line = mean over {seeds}, band = {band}" if multi_seed else "one run per point"
    ax.set_title(f"{metric.capitalize()} vs images per class\n({note})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_heatmap(
    table: Any,
    title: str = "",
    fmt: str = ".2f",
    cmap: Any = "viridis",
    ax: Axes | None = None,
) -> Figure:
    """A table of numbers as an annotated colour grid (e.g. the transfer decision matrix).

    Rows and columns keep the DataFrame's labels and axis names; missing values stay blank.
    """
    where = "plot_heatmap"
    if not (hasattr(table, "to_numpy") and hasattr(table, "columns") and hasattr(table, "index")):
        raise InvalidParameterError(f"{where}: table must be a pandas DataFrame, got {type(table).__name__}.")
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise InvalidParameterError(f"{where}: table is empty (shape {table.shape}).")
    try:
        values = table.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{where}: every cell must be a number (NaN for blanks); converting failed: {exc}."
        ) from exc
    try:
        format(1.0, fmt)
    except ValueError as exc:
        raise InvalidParameterError(f"{where}: fmt {fmt!r} is not a number format such as '.2f' or '.0%'.") from exc
    if isinstance(cmap, str) and cmap not in plt.colormaps():
        raise unknown_name("colormap", cmap, plt.colormaps())
    rows, cols = values.shape
    fig, ax = _one_axes(ax, (max(4.0, 1.1 * cols + 2.5), max(3.0, 0.5 * rows + 1.8)), where)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, aspect="auto")
    colormap = image.get_cmap()
    norm = image.norm
    for r in range(rows):
        for c in range(cols):
            v = values[r, c]
            if not np.isfinite(v):
                continue
            red, green, blue, _ = colormap(norm(v))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(np.arange(cols), [_wrap(c, 18) for c in table.columns], rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(np.arange(rows), [_wrap(i, 28) for i in table.index], fontsize=8)
    if table.columns.name:
        ax.set_xlabel(str(table.columns.name))
    if table.index.name:
        ax.set_ylabel(str(table.index.name))
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return fig


__all__ = [
    "STATUS_COLOURS",
    "confusion_counts",
    "first_rgb_conv",
    "plot_confusion_matrix",
    "plot_feature_maps",
    "plot_first_layer_filters",
    "plot_heatmap",
    "plot_history",
    "plot_image_grid",
    "plot_learning_curve",
    "plot_lr_per_stage",
    "plot_misclassified",
    "plot_stage_diagram",
    "show_predictions",
    "stage_summary",
]
