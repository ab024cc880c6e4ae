"""The preprocessing a pretrained network expects, in one object.

A pretrained network only works on inputs prepared the way its training images were: the
same resize/crop ratio and the same normalisation. torchvision records this with each
weights enum (``weights.transforms()``); :class:`Preprocessing` holds the same facts for every
backbone the course supports, including EfficientNet-Lite0, whose TensorFlow origin means a
different normalisation (mean 127/255, std 128/255) from torchvision's ImageNet statistics.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from .._checks import int_at_least

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize, centre-crop and normalisation for one pretrained backbone."""

    crop_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: InterpolationMode = InterpolationMode.BILINEAR

    def at(self, crop_size: int) -> "Preprocessing":
        """The same recipe at another input size, keeping the resize/crop ratio.

        Smaller inputs are the main speed lever on a CPU (cost grows with pixels), so the
        course runs most experiments at 128-160 px with the ratio of the 224 px recipe.
        """
        crop_size = int_at_least(crop_size, "image_size", 32)
        ratio = self.resize_size / self.crop_size
        return replace(self, crop_size=crop_size, resize_size=int(round(crop_size * ratio)))

    def transforms(self) -> ImageClassification:
        """The torchvision transform for PIL images or uint8 tensors (as ``weights.transforms()``)."""
        return ImageClassification(
            crop_size=self.crop_size,
            resize_size=self.resize_size,
            mean=list(self.mean),
            std=list(self.std),
            interpolation=self.interpolation,
        )

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Scale uint8 (or [0, 1] float) images and normalise them, batched or single."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
        return (images - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] for display."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
        return (images * std + mean).clamp(0, 1)


TF_LITE = Preprocessing(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
