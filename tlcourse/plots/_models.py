"""What the plots that run a model need to know about it: its device and its name.

Their forward passes run under :func:`tlcourse.models.modes.evaluating`, the one place the
course sets and restores train/eval mode.

Private to :mod:`tlcourse.plots`; the names carry no underscore so the families can import
them without reaching into another module's private names.
"""
from __future__ import annotations

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


def arch_name(model: nn.Module) -> str:
    """The backbone's course name (``mobilenet_v2``), or the class name of any other model."""
    try:
        from ..models import spec_for

        return spec_for(model).name
    except CourseError:
        return type(model).__name__


__all__ = ["arch_name", "model_device"]
