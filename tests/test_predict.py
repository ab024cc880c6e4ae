"""``tlcourse predict`` on real leaf photos, a truncated JPEG, a text file and wrong model files.

The model file comes from test_export.py's session fixture (MobileNetV2, head trained on cached
features at 64 px). The command runs in-process through ``tlcourse.cli.main``, exactly as the
console script does, so exit statuses and stdout/stderr are the real ones.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest
import torch

from tlcourse.cli import main
from test_export import LeafExport, leaf_export  # noqa: F401  (the shared session fixture)


def _run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, list[list[str]], str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(out))) if out else []
    return code, rows, err


@pytest.fixture()
def leaves(leaf_export: LeafExport, tmp_path: Path) -> Path:  # noqa: F811
    """A folder of four unseen leaf photos, two in a sub-folder, plus a README that is not an image."""
    root = tmp_path / "field"
    (root / "more").mkdir(parents=True)
    for i, photo in enumerate(leaf_export.held_out[:4]):
        shutil.copy(photo, (root if i < 2 else root / "more") / f"leaf{i}.jpg")
    (root / "README.txt").write_text("photos from the greenhouse\n")
    return root


def _expected_top(leaf_export: LeafExport, paths: list[Path], k: int) -> list[list[tuple[str, float]]]:  # noqa: F811
    """The in-memory model's answer on the same photos, with the export's preprocessing."""
    from PIL import Image

    transform = leaf_export.preprocessing.transforms()
    batch = []
    for path in paths:
        with Image.open(path) as img:
            batch.append(transform(img.convert("RGB")))
    with torch.inference_mode():
        probs = leaf_export.model.eval()(torch.stack(batch)).softmax(1)
    values, indices = probs.topk(k, dim=1)
    return [[(leaf_export.class_names[i], v) for v, i in zip(vs.tolist(), ix.tolist())]
            for vs, ix in zip(values, indices)]


def test_folder_walked_recursively_and_predictions_match_the_model(
    leaf_export: LeafExport, leaves: Path, capsys: pytest.CaptureFixture  # noqa: F811
) -> None:
    code, rows, err = _run(capsys, "--model", leaf_export.path, leaves)
    assert code == 0, err
    assert rows[0] == ["path", "predicted_class", "probability"]
    paths = [Path(r[0]) for r in rows[1:]]
    assert sorted(paths) == sorted(leaves.rglob("*.jpg")) and len(paths) == 4
    assert "skipped" in err and "README.txt" in err  # a non-image in a folder is named, not fatal
    for row, (name, p) in zip(rows[1:], [top[0] for top in _expected_top(leaf_export, paths, 1)]):
        assert row[1] == name
        assert float(row[2]) == pytest.approx(p, abs=1e-4)
        assert row[2] == f"{float(row[2]):.4f}"


def test_top_k_columns(leaf_export: LeafExport, leaves: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    photo = leaves / "leaf0.jpg"
    code, rows, err = _run(capsys, "--model", leaf_export.path, "--top-k", 3, photo)
    assert code == 0, err
    assert rows[0] == ["path", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3"]
    assert len(rows) == 2 and rows[1][0] == str(photo)
    expected = _expected_top(leaf_export, [photo], 3)[0]
    assert rows[1][1::2] == [name for name, _ in expected]
    assert [float(v) for v in rows[1][2::2]] == pytest.approx([p for _, p in expected], abs=1e-4)


def test_truncated_jpeg_fails_but_good_lines_are_printed(
    leaf_export: LeafExport, leaves: Path, tmp_path: Path, capsys: pytest.CaptureFixture  # noqa: F811
) -> None:
    data = (leaves / "leaf0.jpg").read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[: len(data) // 2])  # an interrupted copy: valid header, half the scan
    code, rows, err = _run(capsys, "--model", leaf_export.path, leaves / "leaf1.jpg", broken)
    assert code == 1
    assert [r[0] for r in rows[1:]] == [str(leaves / "leaf1.jpg")]
    assert "broken.jpg" in err and "truncated" in err


def test_non_image_files(leaf_export: LeafExport, leaves: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    notes = leaves / "README.txt"
    code, rows, err = _run(capsys, "--model", leaf_export.path, notes, leaves / "leaf0.jpg")
    assert code == 1  # named explicitly: an error, not a skip
    assert "README.txt is not an image" in err
    assert [r[0] for r in rows[1:]] == [str(leaves / "leaf0.jpg")]
    code, rows, err = _run(capsys, "--model", leaf_export.path, leaves / "missing.jpg")
    assert code == 1 and "missing.jpg: no such file" in err and rows == [["path", "predicted_class", "probability"]]
    empty = leaves / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("nothing here")
    code, rows, err = _run(capsys, "--model", leaf_export.path, empty)
    assert code == 1 and "no image files in this folder" in err and "skipped" in err


@pytest.mark.parametrize("kind", ["state_dict", "random", "missing"])
def test_wrong_model_file(
    kind: str, leaf_export: LeafExport, leaves: Path, tmp_path: Path, capsys: pytest.CaptureFixture  # noqa: F811
) -> None:
    model_file = tmp_path / "model.pt"
    if kind == "state_dict":
        torch.save(leaf_export.model.state_dict(), model_file)
    elif kind == "random":
        model_file.write_bytes(os.urandom(2048))
    code, rows, err = _run(capsys, "--model", model_file, leaves)
    assert code == 2 and rows == []
    assert err.startswith("tlcourse predict: ") and str(model_file) in err
    assert {"state_dict": "torch.save", "random": "not a tlcourse model export", "missing": "No model file"}[kind] in err


def test_bad_top_k(leaf_export: LeafExport, leaves: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    code, rows, err = _run(capsys, "--model", leaf_export.path, "--top-k", 16, leaves)
    assert code == 2 and rows == [] and "top_k must be an integer from 1 to 15" in err
