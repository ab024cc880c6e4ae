"""What the plots accept, turned into what they draw: class names, class indices,
probabilities and images, each checked with a message that names the plot and the fix.

Images come as ``uint8`` tensors ``(N, C, H, W)`` or ``(C, H, W)`` (what the course's
datasets hold), a list of such tensors, PIL images, or ``uint8`` NumPy arrays ``(H, W, C)``.

Private to :mod:`tlcourse.plots`; the names carry no underscore so the families can import
them without reaching into another module's private names.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InvalidParameterError
from ..metrics import class_indices  # the check the metrics use: one rule for class indices

__all__ = [
    "as_class_names",
    "as_display_image",
    "as_display_images",
    "as_model_input",
    "as_probabilities",
    "class_indices",
]


def as_class_names(class_names: Any, where: str) -> list[str]:
    """A non-empty list of class names as strings (a single string is a mistake, not a list)."""
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) or len(class_names) < 1:
        raise InvalidParameterError(
            f"{where}: class_names must be a list of class names (e.g. dataset.classes), got "
            f"{class_names!r:.80}."
        )
    return [str(c) for c in class_names]


def as_probabilities(probs: Any, n: int, num_classes: int, where: str) -> np.ndarray:
    """Class probabilities ``(n, num_classes)`` as float64; logits are refused with the fix."""
    values = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    arr = values.astype(np.float64)
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


def as_display_image(image: Any, where: str) -> np.ndarray:
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


def as_display_images(images: Any, where: str) -> list[np.ndarray]:
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
    return [as_display_image(img, where) for img in items]


def as_model_input(image: Any, where: str) -> torch.Tensor:
    """PIL image or uint8 tensor/array -> uint8 tensor (3, H, W), ready to normalise."""
    arr = as_display_image(image, where)
    tensor = torch.from_numpy(np.array(arr, copy=True))  # PIL arrays are read-only
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(-1).expand(-1, -1, 3)
    return tensor.permute(2, 0, 1).contiguous()
