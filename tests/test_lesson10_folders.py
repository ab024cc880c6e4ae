"""Lesson 10 run on folders other than its default (the smoke profile, as CI runs it):

- PneumoniaMNIST chest X-rays written out as greyscale PNG files, one sub-folder per class: the
  lesson runs to the end and its folder check names the tiny, greyscale images;
- a folder with corrupt files, a non-image, an empty class and a photo in two classes: the lesson
  stops before any training, and the error names every one of them;
- a folder with one class: refused with what to do.

The default folder (the course's ants/bees) runs in tests/test_notebooks.py with every lesson.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leaf_folders import CLASSES, image_folder, photos
from loopback_server import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.notebooks, pytest.mark.usefixtures("shared_data")]


def _run(tmp_path: Path, data_dir: Path):
    from tlcourse.course.runner import default_kernel, run_course

    out = tmp_path / "run"
    summary = run_course(ROOT, profile="smoke", only="10", out=out, parameters={"data_dir": str(data_dir)},
                         kernel=default_kernel(), progress=False)
    (result,) = summary.notebooks
    return result, json.loads((out / "summary.json").read_text())["notebooks"][0]


def _xray_folder(root: Path, per_class: int = 30) -> Path:
    """PneumoniaMNIST's training images as 28x28 greyscale PNGs: normal/ and pneumonia/."""
    npz = np.load(shared_data_dir() / "pneumoniamnist" / "pneumoniamnist.npz")
    images, labels = npz["train_images"], npz["train_labels"].reshape(-1)
    for label, name in enumerate(("normal", "pneumonia")):
        (root / name).mkdir(parents=True)
        for i in np.flatnonzero(labels == label)[:per_class]:
            Image.fromarray(images[i], mode="L").save(root / name / f"xray_{i:05d}.png")
    return root


def test_lesson_runs_on_greyscale_xrays_written_as_files(tmp_path: Path) -> None:
    folder = _xray_folder(tmp_path / "xrays")
    result, entry = _run(tmp_path, folder)
    assert result.status == "ok", result.error
    recorded = entry["results"]["values"]
    assert recorded["n_classes"] == 2 and recorded["n_train"] + recorded["n_test"] < 60
    assert 0.0 <= recorded["test_accuracy"] <= 1.0
    findings = " ".join(recorded["findings"])
    assert "tiny images" in findings and "(28x28)" in findings
    assert "colour modes" in findings and "L: 60" in findings


def test_lesson_stops_on_a_damaged_folder_naming_every_problem(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 4)
    a, b, c = sorted(CLASSES)
    (root / a / photos(a, 0, 1)[0].name).write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / b / "notes.txt").write_text("field notes\n")
    (root / "Tomato_healthy").mkdir()
    shutil.copyfile(root / b / photos(b, 0, 1)[0].name, root / c / "same_leaf.jpg")
    result, _ = _run(tmp_path, root)
    assert result.status == "failed"
    for name in (photos(a, 0, 1)[0].name, "Tomato_healthy", "same_leaf.jpg"):
        assert name in result.error
    assert "cannot be trained on" in result.error
    executed = (tmp_path / "run" / "10_your_own_data.ipynb").read_text()
    assert f"{b}/notes.txt" in executed  # the warning, shown in the check's table before the stop


def test_lesson_refuses_a_folder_with_one_class(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3, classes=CLASSES[:1])
    result, _ = _run(tmp_path, root)
    assert result.status == "failed"
    assert "a classifier needs at least two classes" in result.error
