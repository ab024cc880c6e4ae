"""What a network learned: its first layer's filters and the feature maps of each stage."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .._checks import int_at_least
from ..errors import CourseError, InvalidParameterError, unknown_name
from ._figures import new_figure, one_axes, show_image
from ._inputs import as_model_input
from ..models.modes import evaluating
from ._models import arch_name, model_device


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
    max_filters = int_at_least(max_filters, "max_filters", 1, where=where)
    ncols = int_at_least(ncols, "ncols", 1, where=where)
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
    fig, ax = one_axes(ax, (0.75 * cols + 1.0, 0.75 * rows + 1.2), where)
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"First-layer filters of {arch_name(model)} ({layer_name}): {count} of "
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
    from ..models import stage_sequence

    where = "plot_feature_maps"
    channels = int_at_least(channels, "channels", 1, where=where)
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
    picture = as_model_input(image, where)
    x = preprocessing.normalize(picture.unsqueeze(0)).to(model_device(model))
    outputs: dict[str, torch.Tensor] = {}
    with evaluating(model), torch.no_grad():
        for name, module in seq.items():
            if len(outputs) == len(set(wanted)):
                break
            x = module(x)
            if name in wanted:
                outputs[name] = x[0].float().cpu()
    shown = picture.permute(1, 2, 0).numpy()
    fig, axes = new_figure(len(wanted), 1 + channels, (1.5, 1.65), extra_h=0.4)
    for row, name in enumerate(wanted):
        act = outputs[name]
        c, h, w = act.shape
        show_image(axes[row, 0], shown)
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
        f"Feature maps of {arch_name(model)}: per stage (output channels × height × width) the "
        f"{channels} most active channels; bright = strong response",
        fontsize=10,
    )
    return fig


__all__ = ["first_rgb_conv", "plot_feature_maps", "plot_first_layer_filters"]
