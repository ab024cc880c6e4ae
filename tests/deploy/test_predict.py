"""``tlcourse predict``: real leaf photos, damaged and hostile inputs, wrong model files.

The model file is the session's real export (tests/deploy/exported_leaves.py: MobileNetV2, head
trained on cached features at 64 px). The command runs in-process through ``tlcourse.course.cli.main``
(``run_predict``), exactly as the console script does, so exit statuses and stdout/stderr are the
real ones; the pipe test runs it in a fresh process under bash.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
import torch

from exported_leaves import LeafExport
from filesnap import snapshot


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture()
def leaves(leaf_export: LeafExport, tmp_path: Path) -> Path:
    """A folder of four unseen leaf photos, two in a sub-folder, plus a README that is not an image."""
    root = tmp_path / "field"
    (root / "more").mkdir(parents=True)
    for i, photo in enumerate(leaf_export.held_out[:4]):
        shutil.copy(photo, (root if i < 2 else root / "more") / f"leaf{i}.jpg")
    (root / "README.txt").write_text("photos from the greenhouse\n")
    return root


def _expected_top(leaf_export: LeafExport, paths: list[Path], k: int) -> list[list[tuple[str, float]]]:
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
    leaf_export: LeafExport, leaves: Path, run_predict
) -> None:
    code, rows, err = run_predict("--model", leaf_export.path, leaves)
    assert code == 0, err
    assert rows[0] == ["path", "predicted_class", "probability"]
    paths = [Path(r[0]) for r in rows[1:]]
    assert sorted(paths) == sorted(leaves.rglob("*.jpg")) and len(paths) == 4
    assert "skipped" in err and "README.txt" in err  # a non-image in a folder is named, not fatal
    for row, (name, p) in zip(rows[1:], [top[0] for top in _expected_top(leaf_export, paths, 1)]):
        assert row[1] == name
        assert float(row[2]) == pytest.approx(p, abs=1e-4)
        assert row[2] == f"{float(row[2]):.4f}"


def test_top_k_columns(leaf_export: LeafExport, leaves: Path, run_predict) -> None:
    photo = leaves / "leaf0.jpg"
    code, rows, err = run_predict("--model", leaf_export.path, "--top-k", 3, photo)
    assert code == 0, err
    assert rows[0] == ["path", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3"]
    assert len(rows) == 2 and rows[1][0] == str(photo)
    expected = _expected_top(leaf_export, [photo], 3)[0]
    assert rows[1][1::2] == [name for name, _ in expected]
    assert [float(v) for v in rows[1][2::2]] == pytest.approx([p for _, p in expected], abs=1e-4)


def test_truncated_jpeg_fails_but_good_lines_are_printed(
    leaf_export: LeafExport, leaves: Path, tmp_path: Path, run_predict
) -> None:
    data = (leaves / "leaf0.jpg").read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[: len(data) // 2])  # an interrupted copy: valid header, half the scan
    code, rows, err = run_predict("--model", leaf_export.path, leaves / "leaf1.jpg", broken)
    assert code == 1
    assert [r[0] for r in rows[1:]] == [str(leaves / "leaf1.jpg")]
    assert "broken.jpg" in err and "truncated" in err


def test_non_image_files(leaf_export: LeafExport, leaves: Path, run_predict) -> None:
    notes = leaves / "README.txt"
    code, rows, err = run_predict("--model", leaf_export.path, notes, leaves / "leaf0.jpg")
    assert code == 1  # named explicitly: an error, not a skip
    assert "README.txt is not an image" in err
    assert [r[0] for r in rows[1:]] == [str(leaves / "leaf0.jpg")]
    code, rows, err = run_predict("--model", leaf_export.path, leaves / "missing.jpg")
    assert code == 1 and "missing.jpg: no such file" in err and rows == [["path", "predicted_class", "probability"]]
    empty = leaves / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("nothing here")
    code, rows, err = run_predict("--model", leaf_export.path, empty)
    assert code == 1 and "no image files in this folder" in err and "skipped" in err


@pytest.mark.parametrize("kind", ["state_dict", "random", "missing"])
def test_wrong_model_file(kind: str, leaf_export: LeafExport, leaves: Path, tmp_path: Path, run_predict) -> None:
    model_file = tmp_path / "model.pt"
    if kind == "state_dict":
        torch.save(leaf_export.model.state_dict(), model_file)
    elif kind == "random":
        model_file.write_bytes(os.urandom(2048))
    code, rows, err = run_predict("--model", model_file, leaves)
    assert code == 2 and rows == []
    assert err.startswith("tlcourse predict: ") and str(model_file) in err
    assert {"state_dict": "torch.save", "random": "not a tlcourse model export", "missing": "No model file"}[kind] in err


def test_bad_top_k(leaf_export: LeafExport, leaves: Path, run_predict) -> None:
    code, rows, err = run_predict("--model", leaf_export.path, "--top-k", 16, leaves)
    assert code == 2 and rows == [] and "top_k must be an integer from 1 to 15" in err


@pytest.mark.parametrize("kind", ["training checkpoint", "image", "classroom pack"])
def test_predict_refuses_a_file_that_is_not_a_tlcourse_export(
    kind: str, leaf_export: LeafExport, tmp_path: Path, run_predict
) -> None:
    from tlcourse.train import fit

    leaf = leaf_export.held_out[0]
    if kind == "training checkpoint":  # what fit(checkpoint_path=...) leaves: the likeliest mix-up
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
        data = torch.utils.data.TensorDataset(torch.randn(6, 3, 4, 4), torch.tensor([0, 1, 2] * 2))
        fit(model, data, epochs=1, device="cpu", checkpoint_path=tmp_path / "ckpt.pt", progress=False)
        model_file = tmp_path / "ckpt.pt"
        expected = "it was written by torch.save (a state_dict or checkpoint)"
    elif kind == "image":
        model_file = tmp_path / "model.pt2"
        shutil.copyfile(leaf, model_file)
        expected = "it is not a model archive at all"
    else:
        from tlcourse.course.pack import build_pack

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TORCH_HOME", str(tmp_path / "torch"))
            model_file = build_pack(tmp_path / "pack.tar", assets=["pneumoniamnist"], progress=False).path
        expected = "it is"  # zip tools see the .npz inside the tar: "a zip archive without a model"
    before = snapshot(tmp_path)
    code, rows, err = run_predict("--model", model_file, leaf)
    assert code == 2
    assert f"tlcourse predict: {model_file} is not a tlcourse model export: {expected}" in err
    assert "tlcourse.deploy.export_model(model, path, ...)" in err  # what to do
    assert rows == []  # no half CSV
    assert snapshot(tmp_path) == before


def test_predict_refuses_an_export_whose_class_names_do_not_match_its_outputs(
    leaf_export: LeafExport, tmp_path: Path, run_predict
) -> None:
    other = tmp_path / "ants_bees.pt2"  # the metadata of a 2-class model on the 15-output network
    with zipfile.ZipFile(leaf_export.path) as src, zipfile.ZipFile(other, "w") as out:
        for item in src.infolist():
            raw = src.read(item.filename)
            if item.filename.endswith("extra/tlcourse.json"):
                raw = json.dumps({**json.loads(raw), "class_names": ["ant", "bee"]}).encode()
            out.writestr(item, raw)
    leaf = leaf_export.held_out[0]
    assert run_predict("--model", leaf_export.path, leaf)[0] == 0
    code, rows, err = run_predict("--model", other, leaf)
    assert code == 2 and rows == []
    assert str(other) in err and "ant, bee" in err and "outputs 15 scores" in err


# ----------------------------------------------------------------------------- hostile photos and pipes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb_png(path: Path, side: int = 20_000) -> Path:
    """A valid, all-black greyscale PNG of ``side`` x ``side`` pixels, written row by row.

    400 megapixels compress to about 400 KB, so the file is small while decoding it would need
    400 MB (1.2 GB as RGB): Pillow calls that a decompression bomb. Writing it with Pillow would
    allocate the whole image, so the chunks are written here, the pixel rows streamed through zlib.
    """
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then black pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_named_and_the_rest_classified(
    leaf_export: LeafExport, tmp_path: Path, run_predict
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    bomb = write_bomb_png(folder / "bomb.png")
    leaf = folder / "leaf.jpg"
    shutil.copyfile(leaf_export.held_out[0], leaf)
    before = snapshot(tmp_path)
    code, rows, err = run_predict("--model", leaf_export.path, folder)
    assert code == 1
    assert [r[0] for r in rows[1:]] == [str(leaf)]  # the leaf is still classified
    problems = _lines(err)
    assert len(problems) == 2, err  # one line for the bomb, then the count
    assert problems[0].startswith(f"tlcourse predict: {bomb}: not decoded, too large: ")
    assert "decompression bomb" in problems[0] and "downscale" in problems[0]
    assert problems[1] == "tlcourse predict: 1 input(s) could not be classified (see above)."
    assert snapshot(tmp_path) == before


def test_photo_names_that_look_like_formulas_stay_text_in_the_csv(
    leaf_export: LeafExport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_predict
) -> None:
    """``tlcourse predict --model m . > out.csv`` on a folder from someone else: its file names
    become the first cells of the rows, relative to the folder."""
    names = ["=1+2.jpg", "@SUM(A1).jpg", "-2+3.jpg", "leaf\r=1+1.jpg", "plain.jpg"]
    for name in names:
        shutil.copyfile(leaf_export.held_out[0], tmp_path / name)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code, rows, err = run_predict("--model", leaf_export.path, ".")
    assert code == 0, err
    assert len(rows) == len(names) + 1  # the carriage return did not split a row
    expected = {("'" + n if n[0] in "=+-@" else n) for n in names}
    assert {r[0] for r in rows[1:]} == expected
    assert snapshot(tmp_path) == before


def test_a_named_pipe_is_reported_and_the_rest_classified(
    leaf_export: LeafExport, tmp_path: Path, run_predict
) -> None:
    """Opening a FIFO with no writer waits forever: it is named and never opened
    (tests/deploy/test_images.py checks the refusal comes before any open)."""
    pipe = tmp_path / "photo.jpg"
    os.mkfifo(pipe)
    leaf = tmp_path / "leaf.jpg"
    shutil.copyfile(leaf_export.held_out[0], leaf)
    code, rows, err = run_predict("--model", leaf_export.path, pipe, leaf)
    assert code == 1 and [r[0] for r in rows[1:]] == [str(leaf)]
    assert _lines(err)[0] == (f"tlcourse predict: {pipe}: not a regular file or a folder (a pipe, socket or "
                              "device); give image files or folders of them.")


def test_predict_into_head_exits_quietly(
    leaf_export: LeafExport, tmp_path: Path, checkout_env: dict[str, str]
) -> None:
    """``| head -1`` closes the pipe after the header: the rest is dropped without a traceback,
    and the exit status is 141 (128 + SIGPIPE), what a shell reports for ``cat`` in its place."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(100):  # four batches of 32: writes go on after head has exited
        shutil.copyfile(leaf_export.held_out[i % len(leaf_export.held_out)], folder / f"leaf{i:03}.jpg")
    before = snapshot(tmp_path)
    script = ('set -o pipefail; "$0" -m tlcourse predict --model "$1" "$2" 2>"$3" | head -1')
    err_file = tmp_path.parent / f"{tmp_path.name}-stderr.txt"
    proc = subprocess.run(["bash", "-c", script, sys.executable, str(leaf_export.path), str(folder), str(err_file)],
                          capture_output=True, text=True, env=checkout_env, timeout=300)
    err = err_file.read_text()
    assert proc.stdout == "path,predicted_class,probability\n"
    assert "Traceback" not in err and "BrokenPipe" not in err and err == "", err
    assert proc.returncode == 141, err
    assert snapshot(tmp_path) == before
