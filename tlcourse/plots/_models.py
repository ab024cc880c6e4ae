"""What the plots that run a model need to know about it: its device, its name, and a
forward pass in eval mode that leaves every submodule's train/eval mode as it was.

:func:`evaluation` is the only place in :mod:`tlcourse.plots` that sets and restores modes
(feature maps and Grad-CAM both go through it), so it can give way to the models package's
own mode helper without touching any figure.

Private to :mod:`tlcourse.plots`; the names carry no underscore so the families can import
them without reaching into another module's private names.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import CourseError


def model_device(model: nn.Module) -> torch.device:
    """Where the model's first parameter (or buffer) lives; the CPU for an empty model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextmanager
def evaluation(model: nn.Module) -> Iterator[nn.Module]:
    """Put the model in eval mode and restore every submodule's own mode afterwards.

    Restoring module by module matters: a fine-tuning recipe may keep frozen BatchNorm layers
    in eval mode inside a model in train mode, and ``model.train()`` would undo that.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


def arch_name(model: nn.Module) -> str:
    """The backbone's course name (``mobilenet_v2``), or the class name of any other model."""
    try:
        from ..models import spec_for

        return spec_for(model).name
    except CourseError:
        return type(model).__name__


__all__ = ["arch_name", "evaluation", "model_device"]
