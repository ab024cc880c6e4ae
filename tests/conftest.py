"""Shared test set-up: real data from ``../shared/data`` and a throw-away cache.

``TLCOURSE_DATA`` defaults to the shared data folder beside the repository (CI sets it too).
``TLCOURSE_CACHE`` defaults to one temporary folder for the whole session, so decoded images
and features are computed once per test run and never come from a developer's own cache.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Test helpers (filesnap, loopback_server) import as top-level modules from any tests/ subfolder.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
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
def python3_kernel() -> str:
    """A Jupyter kernel called python3 for this Python (papermill and the runner name theirs)."""
    from jupyter_client.kernelspec import find_kernel_specs

    if "python3" not in find_kernel_specs():
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--user", "--name", "python3"],
            check=True, capture_output=True,
        )
    assert "python3" in find_kernel_specs()
    return "python3"
