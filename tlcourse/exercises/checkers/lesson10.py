"""Checkers for lesson 10 (your own photos): the training ``Compose`` and the leak between splits.

Both inspect what the learner built (a torchvision ``Compose``; a list of file names) and name
the typical mistake: normalisation before augmentation or with ImageNet-foreign statistics, a
missing augmentation; leaks found by file name instead of by content.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..feedback import Feedback
from .common import fail
from .registry import register_checker

#: The augmentations lesson 10's training Compose must contain, by torchvision class name.
AUGMENTATIONS = ("RandomResizedCrop", "RandomHorizontalFlip", "RandomRotation", "ColorJitter")


def _steps(value: Any) -> list[Any] | None:
    steps = getattr(value, "transforms", None)
    return list(steps) if isinstance(steps, (list, tuple)) else None


@register_checker
def training_compose(value: Any, image_size: int, mean: Sequence[float], std: Sequence[float]) -> Feedback:
    """A training ``transforms.Compose``: the four augmentations, the crop at ``image_size``,
    then ``ToTensor`` and ``Normalize`` with the backbone's own ``mean`` / ``std``, last."""
    steps = _steps(value)
    if steps is None:
        return Feedback(False, f"Expected a transforms.Compose([...]), got {type(value).__name__}.")
    kinds = [type(t).__name__ for t in steps]
    problems = [f"{name} is missing: the lesson's training pipeline uses it." for name in AUGMENTATIONS if name not in kinds]
    crop = next((t for t in steps if type(t).__name__ == "RandomResizedCrop"), None)
    if crop is not None and tuple(crop.size) != (image_size, image_size):
        problems.append(f"RandomResizedCrop makes {tuple(crop.size)} images; the network is trained on "
                        f"{image_size} x {image_size} (pass image_size).")
    if "Normalize" not in kinds:
        problems.append("Normalize is missing: the pretrained network expects its own mean and std.")
    else:
        norm = steps[kinds.index("Normalize")]
        if kinds.index("Normalize") != len(kinds) - 1:
            problems.append("Normalize must come last: augmentations such as ColorJitter expect plain pixel "
                            "values, and whatever follows Normalize would change the statistics it set.")
        if not (np.allclose(norm.mean, mean) and np.allclose(norm.std, std)):
            problems.append(f"Normalize uses mean {list(norm.mean)} / std {list(norm.std)}; the backbone's own are "
                            f"{list(mean)} / {list(std)} (preprocessing.mean, preprocessing.std).")
    if "ToTensor" not in kinds and "PILToTensor" not in kinds:
        problems.append("ToTensor is missing: Normalize works on tensors, ImageFolder gives PIL images.")
    elif "Normalize" in kinds and kinds.index("Normalize") < kinds.index("ToTensor" if "ToTensor" in kinds else "PILToTensor"):
        problems.append("ToTensor must come before Normalize.")
    if problems:
        return fail(problems)
    return Feedback(True, f"Right: {' -> '.join(kinds)}.")


def _names(files: Any) -> list[str] | None:
    if files is None or isinstance(files, (str, bytes, os.PathLike)):
        return None
    try:
        return [str(f) for f in files]
    except TypeError:
        return None


@register_checker
def leaked_files(value: Any, train_files: Sequence[str], test_files: Sequence[str]) -> Feedback:
    """The test files that are byte-for-byte copies of a training file (found by content)."""
    from ...data import shared_files

    expected = sorted({b for _, b in shared_files(train_files, test_files)})
    got = _names(value)
    if got is None:
        return Feedback(False, f"Expected a list of test file paths, got {value!r:.60}.")
    got = sorted(set(got))
    if got == expected:
        return Feedback(True, f"Right: {len(expected)} test photo(s) are copies of training photos: "
                              f"{', '.join(Path(f).name for f in expected)}.")
    train_names = {Path(f).name for f in train_files}
    by_name = sorted(f for f in test_files if Path(f).name in train_names)
    if got == by_name and by_name != expected:
        return Feedback(False, "Those share a file *name* with a training photo. A copy can have any name, and two "
                               "different photos can share one: compare contents (a sha256 of each file).")
    missing = [Path(f).name for f in expected if f not in got]
    extra = [Path(f).name for f in got if f not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} leaked file(s) are not in your list")
    if extra:
        parts.append(f"{len(extra)} of yours are not copies of a training file ({', '.join(extra[:3])})")
    return Feedback(False, "; ".join(parts) + ". Hash every file (tlcourse._hashing.sha256_file or hashlib) and "
                           "keep the test files whose hash is also a training file's.")


__all__ = ["leaked_files", "training_compose"]
