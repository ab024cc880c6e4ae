"""Shared test set-up: real data from ``../shared/data`` and a throw-away cache.

``TLCOURSE_DATA`` defaults to the shared data folder beside the repository (CI sets it too).
``TLCOURSE_CACHE`` defaults to one temporary folder for the whole session, so decoded images
and features are computed once per test run and never come from a developer's own cache.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TLCOURSE_DATA") or ROOT.parent / "shared" / "data")
os.environ["TLCOURSE_DATA"] = str(SHARED_DATA)
if not os.environ.get("TLCOURSE_CACHE"):
    import tempfile

    os.environ["TLCOURSE_CACHE"] = tempfile.mkdtemp(prefix="tlcourse-test-cache-")

import matplotlib  # noqa: E402

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "plantvillage").is_dir():
        pytest.fail(f"Real test data not found at {SHARED_DATA}; set TLCOURSE_DATA to the shared data folder.")
    return SHARED_DATA


@pytest.fixture(scope="session")
def plant_images(shared_data: Path) -> list[Path]:
    """Two real leaf photos from each of three PlantVillage classes."""
    root = shared_data / "plantvillage"
    classes = ["Potato___healthy", "Tomato_Late_blight", "Pepper__bell___Bacterial_spot"]
    return [p for c in classes for p in sorted((root / c).glob("*.jpg"))[:2]]


@pytest.fixture(scope="session")
def small_plants():
    """A small real PlantVillage dataset: 6 images per class, 64 px, MobileNetV2-normalised."""
    from tlcourse.data import eval_transform, load_dataset, take_per_class
    from tlcourse.models import get_spec

    data = load_dataset("plantvillage", 64, progress=False)
    pre = get_spec("mobilenet_v2").preprocessing.at(64)
    return take_per_class(data, 6, seed=0).with_transform(eval_transform(pre))


@pytest.fixture(scope="session")
def plant_batch(plant_images: list[Path]):
    """The six ``plant_images`` as one batch: uint8 images (6 x 3 x 64 x 64) and labels 0, 0, 1, 1, 2, 2."""
    import torch

    from tlcourse.data import decode_images

    return decode_images(plant_images, 64, progress=False), torch.arange(3).repeat_interleave(2)
