"""Shared test set-up: real data from ``../shared/data`` and a throw-away cache.

``TLCOURSE_DATA`` defaults to the shared data folder beside the repository (CI sets it too).
``TLCOURSE_CACHE`` defaults to one temporary folder for the whole session, so decoded images
and features are computed once per test run and never come from a developer's own cache.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # helpers (filesnap, loopback_server) import from every test folder
    sys.path.insert(0, str(TESTS))
pytest.register_assert_rewrite("cli_output", "name_errors")  # helpers whose asserts explain a failure
SHARED_DATA = Path(os.environ.get("TLCOURSE_DATA") or ROOT.parent / "shared" / "data")
os.environ["TLCOURSE_DATA"] = str(SHARED_DATA)
_OWN_CACHE: Path | None = None  # the throw-away cache this session made, removed when it ends
if not os.environ.get("TLCOURSE_CACHE"):
    import tempfile

    _OWN_CACHE = Path(tempfile.mkdtemp(prefix="tlcourse-test-cache-"))
    os.environ["TLCOURSE_CACHE"] = str(_OWN_CACHE)

import matplotlib  # noqa: E402

matplotlib.use("Agg")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session's own cache (a few hundred MB of decoded images and features)."""
    if _OWN_CACHE is not None:
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


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


# ----------------------------------------------------------------------------- plots (tests/plots/)


@pytest.fixture
def no_open_figures():
    """Fails a test whose plot left its figure in pyplot's list instead of handing it over.

    The plot tests use it for every test (``pytestmark = pytest.mark.usefixtures(...)``).
    """
    import matplotlib.pyplot as plt

    yield
    assert plt.get_fignums() == [], "plots must hand their figures to the caller, not leave them in pyplot"
    plt.close("all")


@pytest.fixture(scope="session")
def plant_class_names(shared_data: Path) -> list[str]:
    """The 15 PlantVillage class names, sorted: the order of the class indices."""
    return sorted(p.name for p in (shared_data / "plantvillage").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def leaf_batch(shared_data: Path, plant_class_names: list[str]):
    """Six PlantVillage leaves, two each of classes 0, 6 and 14, at 96 px.

    Returns ``(images, labels, paths)``: uint8 ``(6, 3, 96, 96)``, int64 ``(6,)``, the files.
    """
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    images, labels, paths = [], [], []
    for label in (0, 6, 14):
        for path in sorted((shared_data / "plantvillage" / plant_class_names[label]).glob("*.jpg"))[:2]:
            with Image.open(path) as img:
                images.append(pil_to_tensor(img.convert("RGB").resize((96, 96), Image.BILINEAR)))
            labels.append(label)
            paths.append(path)
    return torch.stack(images), torch.tensor(labels), paths


@pytest.fixture(scope="module")
def plant_classifier():
    """``(model, preprocessing)``: MobileNetV2 with a new 15-way head (PlantVillage's classes)."""
    from tlcourse.models import create_model

    return create_model("mobilenet_v2", 15)


@pytest.fixture(scope="module")
def imagenet_classifier():
    """``(model, preprocessing)``: the pretrained ImageNet MobileNetV2, in eval mode."""
    from tlcourse.models import get_spec, load_backbone

    return load_backbone("mobilenet_v2").eval(), get_spec("mobilenet_v2").preprocessing


# ----------------------------------------------------------------------------- exercises


@pytest.fixture()
def progress_file(tmp_path: Path) -> Path:
    """The progress file an exercise test writes to (``TLCOURSE_PROGRESS`` under ``exercise_env``)."""
    return tmp_path / "progress" / "me.json"


@pytest.fixture()
def exercise_env(monkeypatch: pytest.MonkeyPatch, progress_file: Path) -> Path:
    """The repository's banks, a progress file of the test's own, no exam/headless/learner from outside."""
    monkeypatch.setenv("TLCOURSE_BANKS", str(ROOT / "exercises" / "banks"))
    monkeypatch.setenv("TLCOURSE_PROGRESS", str(progress_file))
    for var in ("TLCOURSE_EXAM", "TLCOURSE_HEADLESS", "TLCOURSE_LEARNER"):
        monkeypatch.delenv(var, raising=False)
    return progress_file


@pytest.fixture(scope="session")
def plant_batch(plant_images: list[Path]):
    """The six ``plant_images`` as one batch: uint8 images (6 x 3 x 64 x 64) and labels 0, 0, 1, 1, 2, 2."""
    import torch

    from tlcourse.data import decode_images

    return decode_images(plant_images, 64, progress=False), torch.arange(3).repeat_interleave(2)


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


# ------------------------------------- the smoke run (test_notebooks.py, course/site/, browser/)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory):
    """One ``tlcourse run --profile smoke --exercises`` over every lesson and exercise notebook
    (papermill, parameters injected): ``(output folder, {label: NotebookResult})``.

    Run once per test session: the notebook tests check it, the site tests build its website.
    """
    from tlcourse.course.runner import default_kernel, run_course

    out = tmp_path_factory.mktemp("smoke") / "run"
    summary = run_course(ROOT, profile="smoke", out=out, kernel=default_kernel(), exercises=True,
                         progress=False)
    return out, {nb.name: nb for nb in summary.notebooks}


@pytest.fixture(scope="session")
def smoke_site(smoke_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tlcourse site`` of the smoke run (built once, for tests/course/site/ and tests/browser/)."""
    import io

    from tlcourse.course.site import build_site

    out, _ = smoke_run
    return build_site(out, tmp_path_factory.mktemp("smoke-site") / "site", stream=io.StringIO())


# ----------------------------------------------------------------- offline machines (tests/data/)


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A machine with nothing: no TLCOURSE_DATA, empty tlcourse and torch caches, no mirror.

    Returns ``{"cache": TLCOURSE_CACHE, "torch": TORCH_HOME}``; retries do not wait.
    """
    from tlcourse.data import download as dl

    cache, torch_home = tmp_path / "cache", tmp_path / "torch"
    monkeypatch.delenv("TLCOURSE_DATA", raising=False)
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.setenv("TLCOURSE_CACHE", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    return {"cache": cache, "torch": torch_home}


# ----------------------------------------------- files for others (test_atomic, course/, data/)


@pytest.fixture
def umask() -> Iterator[None]:
    """Run a test under umask 022 (the common default), whatever the test runner's umask is."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def small_packs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    """``tlcourse pack`` builds the smallest real pack (PneumoniaMNIST, 2.4 MB), not all assets."""
    from tlcourse.course import pack

    monkeypatch.setenv("TLCOURSE_DATA", str(shared_data))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(pack, "pack_assets", lambda: ["pneumoniamnist"])


# ----------------------------------------------------------------- training (tests/train/)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Real leaves of three classes: ``train/`` 10 per class, ``val/`` 4 other ones per class."""
    from leaf_folders import image_folder

    root = tmp_path_factory.mktemp("tiny")
    image_folder(root / "train", 10)
    image_folder(root / "val", 4, start=10)
    return root
