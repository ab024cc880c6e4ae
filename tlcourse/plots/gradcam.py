"""Grad-CAM: where in the image did the evidence for a class come from?

Grad-CAM (Selvaraju et al., ICCV 2017) weights each channel of a late feature map by how
much the class score grows when that channel grows (the spatial mean of the gradient), sums
the weighted channels and keeps the positive part. The result is a coarse map (7x7 for a
224 px input to MobileNetV2) that we upsample to the image. It is the course's tool to catch
a model that is right for the wrong reason: a leaf classifier looking at the background, an
X-ray classifier reading the hospital's marker in the corner.

The gradient is taken with respect to the *activation*, not the weights, with
``torch.autograd.grad``: so it works on a fully frozen backbone, leaves every parameter's
``requires_grad`` and ``.grad`` untouched, and runs in eval mode (BatchNorm statistics are not
updated); each submodule's train/eval mode is restored afterwards.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from .._checks import int_at_least, is_int
from ..errors import InvalidParameterError, unknown_name
from ._figures import RIGHT, WRONG, grid, show_image, wrap
from ._inputs import as_class_names, as_model_input, class_indices
from ..models.modes import evaluating
from ._models import model_device

Layer = str | nn.Module | None


def _layer_description(model: nn.Module, layer: Layer) -> str:
    if layer is None:
        from ..models import stage_sequence

        names = [n for n in stage_sequence(model) if n != "head"]
        return f"stage {names[-1]!r}"
    if isinstance(layer, str):
        return f"stage {layer!r}"
    name = next((n for n, m in model.named_modules() if m is layer), type(layer).__name__)
    return f"layer {name!r}"


def _forward_keeping(model: nn.Module, x: torch.Tensor, layer: Layer) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model, keeping the chosen layer's output as a tensor we can differentiate to.

    If that output does not require grad (everything below it is frozen), we make it a leaf
    that does; a clone goes on downstream so in-place operations there cannot change it.
    """
    where = "grad_cam"
    if layer is None or isinstance(layer, str):
        from ..models import stage_sequence

        seq = stage_sequence(model)
        spatial = [n for n in seq if n != "head"]
        stage = spatial[-1] if layer is None else layer
        if stage == "head":
            raise InvalidParameterError(
                f"{where}: the head outputs class scores with no spatial layout; Grad-CAM needs a "
                f"feature map. Pick a stage from {spatial} (default: the last, {spatial[-1]!r})."
            )
        if stage not in spatial:
            raise unknown_name("stage", stage, spatial)
        acts: torch.Tensor | None = None
        for name, module in seq.items():
            x = module(x)
            if name == stage:
                if not x.requires_grad:
                    x = x.detach().requires_grad_(True)
                acts, x = x, x.clone()
        logits = x
    elif isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise InvalidParameterError(
                f"{where}: layer {type(layer).__name__} is not a submodule of this model. Pass a "
                "stage name, or a module taken from this very model (e.g. model.features[-1])."
            )
        captured: list[torch.Tensor] = []

        def keep(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            if not isinstance(output, torch.Tensor):
                return output
            if not output.requires_grad:
                output = output.detach().requires_grad_(True)
            captured.append(output)
            return output.clone()

        handle = layer.register_forward_hook(keep)
        try:
            logits = model(x)
        finally:
            handle.remove()
        if len(captured) != 1:
            raise InvalidParameterError(
                f"{where}: layer {type(layer).__name__} produced {len(captured)} tensor outputs in "
                "one forward pass; Grad-CAM needs a layer that runs exactly once."
            )
        acts = captured[0]
    else:
        raise InvalidParameterError(
            f"{where}: layer must be None, a stage name or an nn.Module, got {type(layer).__name__}."
        )
    assert acts is not None
    if acts.ndim != 4:
        raise InvalidParameterError(
            f"{where}: the chosen layer outputs shape {tuple(acts.shape)}; Grad-CAM needs a feature "
            "map (N, C, H, W). Pick a convolutional stage."
        )
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise InvalidParameterError(
            f"{where}: the model must return class scores (N, classes); got {type(logits).__name__}."
        )
    return acts, logits


def _targets(target_class: Any, logits: torch.Tensor) -> torch.Tensor:
    n, classes = logits.shape
    if target_class is None:
        return logits.argmax(1)
    if is_int(target_class):  # True is not a class index: it falls through to the message below
        values = torch.full((n,), int(target_class), dtype=torch.long)
    else:
        arr = np.asarray(target_class.detach().cpu() if isinstance(target_class, torch.Tensor) else target_class)
        if arr.ndim != 1 or len(arr) != n or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidParameterError(
                f"grad_cam: target_class must be None (the predicted class), one class index, or {n} "
                f"class indices (one per image); got {target_class!r:.80}."
            )
        values = torch.as_tensor(arr, dtype=torch.long)
    if values.min() < 0 or values.max() >= classes:
        raise InvalidParameterError(
            f"grad_cam: target_class {int(values.max() if values.max() >= classes else values.min())} "
            f"is outside 0..{classes - 1} (the model has {classes} outputs)."
        )
    return values.to(logits.device)


def _grad_cam(
    model: nn.Module, images: torch.Tensor, target_class: Any, layer: Layer
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heatmaps (N, H, W) on the CPU, the logits (N, classes) and the explained classes (N,)."""
    if not isinstance(images, torch.Tensor):
        raise InvalidParameterError(
            f"grad_cam: images must be a float tensor (N, 3, H, W), got {type(images).__name__}."
        )
    if not images.is_floating_point():
        raise InvalidParameterError(
            f"grad_cam: images must be normalised float model inputs, got {images.dtype}. Use "
            "preprocessing.normalize(images_uint8) (or plot_grad_cam, which does it for you)."
        )
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise InvalidParameterError(
            f"grad_cam: images must have shape (N, 3, H, W), got {tuple(images.shape)}."
        )
    height, width = images.shape[-2:]
    x = images.detach().to(model_device(model))
    with evaluating(model), torch.enable_grad():
        acts, logits = _forward_keeping(model, x, layer)
        targets = _targets(target_class, logits)
        score = logits.gather(1, targets[:, None]).sum()  # images are independent in eval mode
        (grads,) = torch.autograd.grad(score, acts)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts.detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam.float(), size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    lo = cam.amin(dim=(1, 2), keepdim=True)
    span = cam.amax(dim=(1, 2), keepdim=True) - lo
    # a map with no positive evidence anywhere stays all zeros instead of dividing by zero
    cam = torch.where(span > 1e-12, (cam - lo) / span.clamp_min(1e-12), torch.zeros_like(cam))
    return cam.detach().cpu(), logits.detach().float().cpu(), targets.cpu()


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    target_class: int | Sequence[int] | torch.Tensor | None = None,
    layer: str | nn.Module | None = None,
) -> torch.Tensor:
    """Grad-CAM heatmaps ``(N, H, W)`` in [0, 1] on the CPU, at the input's size.

    ``images`` are model inputs (normalised floats, e.g. ``preprocessing.normalize(x)``) on
    any device; they are moved to the model's device. ``target_class``: ``None`` explains each
    image's predicted class, an int explains that class for all images, a sequence gives one
    class per image. ``layer``: a stage name from ``stage_sequence(model)`` or a submodule;
    the default is the last stage before the head (the coarsest, most semantic map).
    Each heatmap is min-max scaled on its own: compare where, not how much, between images.
    """
    cam, _, _ = _grad_cam(model, images, target_class, layer)
    return cam


def plot_grad_cam(
    model: nn.Module,
    images_uint8: Any,
    preprocessing: Any,
    class_names: Sequence[str],
    labels: Any = None,
    target_class: int | Sequence[int] | None = None,
    layer: str | nn.Module | None = None,
    ncols: int = 4,
    alpha: float = 0.5,
    show_original: bool = True,
) -> Figure:
    """Images with their Grad-CAM heatmap overlaid, titled with the predicted class.

    The images are fed at their own size, normalised with ``preprocessing``. With
    ``show_original`` each image gets two panels, the picture and the overlay. With ``labels``
    the true class is shown and a wrong prediction is titled in red. Warm colours mark the
    regions that most raised the explained class's score.
    """
    where = "plot_grad_cam"
    names = as_class_names(class_names, where)
    ncols = int_at_least(ncols, "ncols", 1, where=where)
    if not 0.0 <= float(alpha) <= 1.0:
        raise InvalidParameterError(f"{where}: alpha must be in [0, 1] (heatmap opacity), got {alpha!r}.")
    if not hasattr(preprocessing, "normalize"):
        raise InvalidParameterError(
            f"{where}: preprocessing must be the Preprocessing returned by create_model, got "
            f"{type(preprocessing).__name__}."
        )
    if isinstance(images_uint8, torch.Tensor) and images_uint8.ndim == 4:
        items = list(images_uint8)
    elif isinstance(images_uint8, torch.Tensor) or not isinstance(images_uint8, Sequence):
        items = [images_uint8]
    else:
        items = list(images_uint8)
    if not items:
        raise InvalidParameterError(f"{where}: no images were given.")
    pictures = [as_model_input(img, where) for img in items]
    if len({tuple(p.shape) for p in pictures}) != 1:
        raise InvalidParameterError(
            f"{where}: all images must have the same size to run as one batch; got "
            f"{sorted({tuple(p.shape) for p in pictures})}. Resize them first."
        )
    batch = torch.stack(pictures)
    truth = None if labels is None else class_indices(labels, len(pictures), len(names), "labels", where)
    cams, logits, targets = _grad_cam(model, preprocessing.normalize(batch), target_class, layer)
    if logits.shape[1] != len(names):
        raise InvalidParameterError(
            f"{where}: class_names has {len(names)} names but the model has {logits.shape[1]} "
            "outputs. Pass the names of the classes this model was trained on."
        )
    probs = logits.softmax(1)
    preds = probs.argmax(1)
    per = 2 if show_original else 1
    fig, panels = grid(per * len(pictures), per * ncols, (2.4, 2.8), extra_h=0.5)
    for i, picture in enumerate(pictures):
        shown = picture.permute(1, 2, 0).numpy()
        pred, target = int(preds[i]), int(targets[i])
        wrong = truth is not None and pred != int(truth[i])
        title = f"pred: {wrap(names[pred])} ({probs[i, pred]:.0%})"
        if target != pred:
            title += f"\nheat for: {wrap(names[target])} ({probs[i, target]:.0%})"
        overlay = panels[per * i + per - 1]
        if show_original:
            original = panels[per * i]
            show_image(original, shown)
            original.set_title(f"true: {wrap(names[int(truth[i])])}" if truth is not None else "input", fontsize=8)
        elif truth is not None:
            title = f"true: {wrap(names[int(truth[i])])}\n" + title
        show_image(overlay, shown)
        overlay.imshow(cams[i].numpy(), cmap="jet", alpha=float(alpha), vmin=0.0, vmax=1.0)
        overlay.set_title(title, fontsize=8, color=WRONG if wrong else RIGHT)
    fig.suptitle(
        f"Grad-CAM at {_layer_description(model, layer)}\nred = regions that most raised the "
        "explained class's score, blue = little or none",
        fontsize=10,
    )
    return fig


__all__ = ["grad_cam", "plot_grad_cam"]
