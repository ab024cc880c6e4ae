"""Synthetic distribution shifts: a lab photo made to look a little more like a field photo.

PlantVillage shows one detached leaf on a plain grey table, from above, in even light. A phone
photo in a field differs in many ways at once; five of them can be simulated on the lab photos
themselves, each on its own, so a lesson can measure what each one costs a model:

- ``background``: the grey table replaced by a grass texture (scikit-image's public-domain
  ``grass`` photo, tinted green-brown); the leaf's own pixels are kept;
- ``blur``: a Gaussian blur, as from a shaking hand or a missed focus;
- ``low_light``: darker, with sensor noise, as at dusk or in the shade;
- ``jpeg``: strong JPEG compression, as from a messaging app;
- ``occlusion``: a square of one colour over part of the photo (a finger, another leaf).

These are **synthetic** shifts: they say what one simulated change costs, not what real field
photos cost (those combine every change with others no simulation has: soil, several leaves,
other growth stages). Every function takes uint8 images ``(N, 3, H, W)`` or ``(3, H, W)``,
returns new uint8 images of the same shape, never modifies its input, and is repeatable: the
random parts (noise, positions, texture crops) come from ``seed``. ``strength`` scales the shift
from 0 (the photo unchanged) to 1 (the default severity); the severities are relative to the
image size, so 64 px and 224 px photos get the same blur relative to the leaf.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torchvision.transforms.v2 import functional as F

from ..errors import CourseError, InvalidParameterError, unknown_name

#: Channel spread (max - min, 0-255) below which a pixel counts as the grey table, not the leaf.
BACKGROUND_CHROMA = 28
#: The default severities (strength 1).
BLUR_SIGMA = 0.02  # of the image width: 2.6 px at 128 px
LOW_LIGHT_BRIGHTNESS = 0.3  # the image at 30% of its brightness ...
LOW_LIGHT_NOISE = 0.04  # ... plus Gaussian noise of this std (of full scale)
JPEG_QUALITY = 8  # 100 is the best quality; 8 shows visible blocks
OCCLUSION_AREA = 0.2  # of the photo covered


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim not in (3, 4) \
            or images.shape[-3] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, torch.Tensor) else ""
        raise CourseError(
            f"Shifts work on uint8 RGB images (N, 3, H, W) or (3, H, W), got {dtype} {shape}. Shift the "
            "raw images (dataset.images), then normalise: the shifts simulate the camera, before preprocessing."
        )
    return images.unsqueeze(0) if images.ndim == 3 else images


def _check_strength(strength: float) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise InvalidParameterError(f"strength must be a number in [0, 1] (0: no shift, 1: the default), got {strength!r}.")
    return float(strength)


def leaf_mask(images: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` bool: True where a pixel is coloured (the leaf), False on the grey table.

    A leaf is green, yellow or brown: its red, green and blue differ. The table is grey: they
    nearly agree. A threshold on that spread is crude (a grey lesion counts as table) but needs
    no model, which is what a synthetic background swap needs.
    """
    x = _check_images(images).int()
    chroma = x.amax(1, keepdim=True) - x.amin(1, keepdim=True)
    return chroma > BACKGROUND_CHROMA


@functools.lru_cache(maxsize=1)
def _grass_photo() -> torch.Tensor:
    """scikit-image's grass photo (512 x 512 grey, public domain) in [0, 1], decoded once per process:
    :func:`random_shifts` asks for it once per image it puts on grass."""
    from skimage import data as skdata

    return torch.from_numpy(skdata.grass()).float() / 255


def _grass(height: int, width: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random crops of scikit-image's grass photo, tinted from soil brown to leaf green."""
    grey = _grass_photo()
    side = min(grey.shape)
    scale = max(height, width) * 2 / side  # a crop of half the photo, resized to the image
    tiles = []
    for _ in range(n):
        top = int(torch.randint(0, side // 2 + 1, (1,), generator=generator))
        left = int(torch.randint(0, side // 2 + 1, (1,), generator=generator))
        crop = grey[top: top + side // 2, left: left + side // 2][None, None]
        crop = torch.nn.functional.interpolate(crop, size=(height, width), mode="bilinear", antialias=scale < 1,
                                               align_corners=False)[0]
        tiles.append(crop)
    g = torch.stack(tiles)  # (n, 1, H, W) in [0, 1]
    soil = torch.tensor([92.0, 70.0, 45.0]).view(1, 3, 1, 1)
    green = torch.tensor([88.0, 128.0, 52.0]).view(1, 3, 1, 1)
    return soil + (green - soil) * g + 60 * (g - 0.5)


def background(images: torch.Tensor, strength: float = 1.0, *, seed: int = 0) -> torch.Tensor:
    """The grey table replaced by grass (blended by ``strength``); the leaf's pixels kept."""
    x = _check_images(images)
    s = _check_strength(strength)
    g = torch.Generator().manual_seed(seed)
    texture = _grass(x.shape[-2], x.shape[-1], len(x), g)
    keep = leaf_mask(x)
    swapped = torch.where(keep, x.float(), (1 - s) * x.float() + s * texture)
    return _out(swapped, images)


def blur(images: torch.Tensor, strength: float = 1.0, *, seed: int = 0) -> torch.Tensor:
    """Gaussian blur with sigma ``strength * BLUR_SIGMA`` of the image width (``seed`` unused)."""
    x = _check_images(images)
    sigma = _check_strength(strength) * BLUR_SIGMA * x.shape[-1]
    if sigma < 0.05:
        return images.clone()
    k = 2 * math.ceil(3 * sigma) + 1
    return _out(F.gaussian_blur(x.float(), kernel_size=[k, k], sigma=[sigma, sigma]), images)


def low_light(images: torch.Tensor, strength: float = 1.0, *, seed: int = 0) -> torch.Tensor:
    """Darker (down to ``LOW_LIGHT_BRIGHTNESS``) with Gaussian sensor noise, both scaled by ``strength``."""
    x = _check_images(images)
    s = _check_strength(strength)
    g = torch.Generator().manual_seed(seed)
    brightness = 1 - s * (1 - LOW_LIGHT_BRIGHTNESS)
    noise = torch.randn(x.shape, generator=g) * (s * LOW_LIGHT_NOISE * 255)
    return _out(x.float() * brightness + noise, images)


def jpeg(images: torch.Tensor, strength: float = 1.0, *, seed: int = 0) -> torch.Tensor:
    """JPEG-compressed and decoded again; quality falls from 100 (strength 0) to ``JPEG_QUALITY``."""
    x = _check_images(images)
    s = _check_strength(strength)
    if s == 0:
        return images.clone()
    quality = int(round(100 - s * (100 - JPEG_QUALITY)))
    out = torch.stack([_jpeg_round_trip(img, quality) for img in x])
    return out if images.ndim == 4 else out[0]


def _jpeg_round_trip(image: torch.Tensor, quality: int) -> torch.Tensor:
    """One (3, H, W) uint8 image through Pillow's JPEG encoder and decoder, in memory."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return torch.from_numpy(np.asarray(decoded.convert("RGB")).copy()).permute(2, 0, 1)


def occlusion(images: torch.Tensor, strength: float = 1.0, *, seed: int = 0) -> torch.Tensor:
    """A square of one random dark colour over ``strength * OCCLUSION_AREA`` of each photo."""
    x = _check_images(images)
    s = _check_strength(strength)
    out = x.clone()
    n, _, h, w = x.shape
    side = int(round(math.sqrt(s * OCCLUSION_AREA) * min(h, w)))
    if side == 0:
        return out if images.ndim == 4 else out[0]
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        top = int(torch.randint(0, h - side + 1, (1,), generator=g))
        left = int(torch.randint(0, w - side + 1, (1,), generator=g))
        colour = torch.randint(20, 120, (3, 1, 1), generator=g, dtype=torch.uint8)
        out[i, :, top: top + side, left: left + side] = colour
    return out if images.ndim == 4 else out[0]


def _out(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    x = x.round().clamp(0, 255).to(torch.uint8)
    return x if like.ndim == 4 else x[0]


SHIFTS: dict[str, Callable[..., torch.Tensor]] = {
    "background": background,
    "blur": blur,
    "low_light": low_light,
    "jpeg": jpeg,
    "occlusion": occlusion,
}


def apply_shift(images: torch.Tensor, name: str, strength: float = 1.0, *, seed: int = 0) -> torch.Tensor:
    """The shift called ``name`` (one of :data:`SHIFTS`), or the images unchanged for ``"none"``."""
    if name == "none":
        _check_images(images)
        _check_strength(strength)
        return images.clone()
    if name not in SHIFTS:
        raise unknown_name("shift", name, ("none", *SHIFTS))
    return SHIFTS[name](images, strength, seed=seed)


def random_shifts(images: torch.Tensor, *, seed: int = 0, p: float = 0.5, min_strength: float = 0.3) -> torch.Tensor:
    """Shift-augmented copies: each image, with probability ``p``, gets one random shift at a
    random strength in ``[min_strength, 1]``; the others stay as they are.

    Drawn once with ``seed`` (not anew every epoch), so the copies can be run through a frozen
    backbone once and cached like any other images: augmentation for cached features.
    """
    x = _check_images(images)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise InvalidParameterError(f"p must be a probability in [0, 1], got {p!r}.")
    _check_strength(min_strength)
    g = torch.Generator().manual_seed(seed)
    names = list(SHIFTS)
    out = x.clone()
    picks = torch.randint(0, len(names), (len(x),), generator=g)
    apply = torch.rand(len(x), generator=g) < p
    strengths = min_strength + (1 - min_strength) * torch.rand(len(x), generator=g)
    for k, name in enumerate(names):
        idx = torch.nonzero(apply & (picks == k)).flatten()
        for j in idx.tolist():  # one by one: each image its own strength and random parts
            out[j] = SHIFTS[name](x[j], float(strengths[j]), seed=seed * 100_003 + j)
    return out if images.ndim == 4 else out[0]


__all__ = ["SHIFTS", "apply_shift", "background", "blur", "jpeg", "leaf_mask", "low_light", "occlusion",
           "random_shifts"]
