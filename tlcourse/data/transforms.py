"""Tensor transforms: the backbone's normalisation, and augmentation presets that keep it.

Augmentation changes the *pixels* a network sees (crops, flips, rotations, colour); it must
never change the *normalisation*, which has to stay the pretrained network's own. So every
preset here augments the uint8 image first and normalises last, with the statistics of the
backbone's :class:`~tlcourse.models.Preprocessing`. The presets follow torchvision's
``references/classification/presets.py`` (random-resized crop + flip as the baseline).
"""
from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import v2

from ..errors import CourseError, unknown_name
from ..models.preprocessing import Preprocessing

AUGMENTATIONS = ("none", "flip", "flips", "standard", "strong")


class Normalize:
    """uint8 image -> float, normalised with the backbone's mean and std."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.normalize(image)

    def __repr__(self) -> str:
        p = self.preprocessing
        return f"Normalize(mean={tuple(round(m, 3) for m in p.mean)}, std={tuple(round(s, 3) for s in p.std)})"


#: torchvision operations whose output changes from call to call, besides its ``Random*`` ones.
RANDOM_OPS = frozenset({"ColorJitter", "RandAugment", "TrivialAugmentWide", "AutoAugment", "AugMix",
                        "GaussianBlur", "ElasticTransform", "ScaleJitter"})


def is_random_op(op: object) -> bool:
    """Whether one transform step is random (torchvision's naming: ``Random*``, plus :data:`RANDOM_OPS`)."""
    name = type(op).__name__
    return name.startswith("Random") or name in RANDOM_OPS


def is_augmenting(transform: object) -> bool:
    """Whether ``transform`` changes an image at random: an augmentation preset of this module, a
    random torchvision step, or a ``Compose`` (v1 or v2, nested too) holding one. What a feature
    cache must refuse, since it would freeze one random draw forever."""
    if isinstance(transform, _Augment) or is_random_op(transform):
        return True
    if isinstance(transform, Mirror):  # a mirror of a deterministic transform is deterministic
        return is_augmenting(transform.inner)
    steps = getattr(transform, "transforms", None)
    return isinstance(steps, (list, tuple)) and any(is_augmenting(step) for step in steps)


def eval_transform(preprocessing: Preprocessing) -> Normalize:
    """The deterministic transform for validation, test and feature extraction."""
    return Normalize(preprocessing)


class Mirror:
    """The image mirrored, then ``transform``: a deterministic second view of a photo.

    Left-right by default; ``upside_down=True`` flips it top-bottom as well (``left_right=False``:
    top-bottom only). Deterministic, so a frozen backbone's output for it can be cached like the
    photo's own (:func:`tlcourse.features.extract_mirror_pairs`): flip augmentation with no
    backbone pass per epoch. ``transform`` must be deterministic too (an eval transform).
    """

    def __init__(self, transform, *, upside_down: bool = False, left_right: bool = True) -> None:
        if not (upside_down or left_right):
            raise CourseError("Mirror() with neither left_right nor upside_down would be the photo itself.")
        self.inner, self.upside_down, self.left_right = transform, upside_down, left_right

    def __call__(self, image):
        # a tensor (..., H, W) or a PIL image, as torchvision's transforms take either
        if isinstance(image, torch.Tensor):
            dims = (-2,) * self.upside_down + (-1,) * self.left_right
            return self.inner(image.flip(dims))
        if self.left_right:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.upside_down:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return self.inner(image)

    def __repr__(self) -> str:  # part of the feature cache's key
        if not self.upside_down:
            return f"Mirror({self.inner!r})"
        return f"Mirror({self.inner!r}, upside_down=True, left_right={self.left_right})"


class Flip:
    """A batch or image tensor flipped along ``dims`` (``(-1,)``: left-right, ``(-2,)``: top-bottom):
    a deterministic view, to go after an evaluation transform (features of it can be cached)."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        self.dims = tuple(dims)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image.flip(self.dims)

    def __repr__(self) -> str:
        return f"Flip(dims={self.dims})"


class _Augment:
    def __init__(self, ops: v2.Compose, preprocessing: Preprocessing, name: str) -> None:
        self.ops, self.normalize, self.name = ops, Normalize(preprocessing), name

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.ops(image))

    def __repr__(self) -> str:
        return f"train_transform({self.name!r}: {self.ops}, then {self.normalize})"


def train_transform(preprocessing: Preprocessing, preset: str = "standard", image_size: int | None = None) -> _Augment | Normalize:
    """An augmentation preset for training images (uint8 CHW tensors of ``image_size`` px).

    - ``none``: normalisation only (what cached features assume);
    - ``flip``: random horizontal flip;
    - ``flips``: random horizontal and random vertical flip (photos taken from straight above,
      such as leaves on a table, where upside down is as plausible as mirrored);
    - ``standard``: random-resized crop (60-100% of the area) + horizontal flip;
    - ``strong``: standard + rotation up to 20 degrees + colour jitter.
    """
    if preset not in AUGMENTATIONS:
        raise unknown_name("augmentation preset", preset, AUGMENTATIONS)
    if preset == "none":
        return Normalize(preprocessing)
    size = image_size or preprocessing.crop_size
    ops: list = []
    if preset in ("standard", "strong"):
        ops.append(v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True))
    ops.append(v2.RandomHorizontalFlip())
    if preset == "flips":
        ops.append(v2.RandomVerticalFlip())
    if preset == "strong":
        ops += [v2.RandomRotation(20), v2.ColorJitter(0.3, 0.3, 0.3, 0.02)]
    return _Augment(v2.Compose(ops), preprocessing, preset)
