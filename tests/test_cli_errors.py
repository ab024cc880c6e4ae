"""The command line on hostile machines and inputs: ``tlcourse doctor`` and ``tlcourse predict``.

- doctor with a torch cache (``TORCH_HOME``) that cannot be written: a failed check with its fix;
- predict on a decompression bomb (a 20000 x 20000 PNG): that file named, the others classified;
- predict on an 8000 x 8000 JPEG: decoded at a reduced scale, so memory stays small, while a
  normal-size photo gets exactly the predictions it got before;
- predict piped into ``head``: no traceback when the reader goes away.

Tests run as root (here and in CI), so a folder cannot be made unwritable with chmod; a path
*under a regular file* cannot be created by anyone, which is what these tests use. The model
is test_export.py's session fixture (MobileNetV2 with a head trained on real leaves, 64 px).
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from filesnap import snapshot
from test_export import LeafExport, leaf_export  # noqa: F401  (the shared session fixture)
from tlcourse.cli import main
from tlcourse.deploy import open_image

REPO = Path(__file__).resolve().parents[1]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _env() -> dict[str, str]:
    """The environment for a fresh process that imports this checkout's tlcourse."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    return env


# ----------------------------------------------------------------------------- doctor


def test_doctor_with_an_unwritable_torch_cache_reports_a_failed_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "torch-home-is-a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("TORCH_HOME", str(blocker / "hub"))
    before = snapshot(tmp_path)
    code = main(["doctor"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    weights = [line for line in out.splitlines() if "weights mobilenet_v2" in line]
    assert len(weights) == 1 and weights[0].startswith("FAIL"), out
    assert f"{blocker} is a file, not a folder" in weights[0]  # what is wrong, where
    assert "TORCH_HOME" in weights[0] and "tlcourse doctor" in weights[0]  # and how to fix it
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert f"\n{len(failed)} problem(s) stop the course from running" in out
    assert "Traceback" not in out + err
    assert snapshot(tmp_path) == before  # the file in the way is untouched, nothing half-copied


# ----------------------------------------------------------------------------- predict


def _predict(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, list[list[str]], str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, list(csv.reader(io.StringIO(out))) if out else [], err


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
    leaf_export: LeafExport, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    bomb = write_bomb_png(folder / "bomb.png")
    leaf = folder / "leaf.jpg"
    shutil.copyfile(leaf_export.held_out[0], leaf)
    before = snapshot(tmp_path)
    code, rows, err = _predict(capsys, "--model", leaf_export.path, folder)
    assert code == 1
    assert [r[0] for r in rows[1:]] == [str(leaf)]  # the leaf is still classified
    problems = _lines(err)
    assert len(problems) == 2, err  # one line for the bomb, then the count
    assert problems[0].startswith(f"tlcourse predict: {bomb}: not decoded, too large: ")
    assert "decompression bomb" in problems[0] and "downscale" in problems[0]
    assert problems[1] == "tlcourse predict: 1 input(s) could not be classified (see above)."
    assert snapshot(tmp_path) == before


def test_photo_names_that_look_like_formulas_stay_text_in_the_csv(
    leaf_export: LeafExport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``tlcourse predict --model m . > out.csv`` on a folder from someone else: its file names
    become the first cells of the rows, relative to the folder."""
    names = ["=1+2.jpg", "@SUM(A1).jpg", "-2+3.jpg", "leaf\r=1+1.jpg", "plain.jpg"]
    for name in names:
        shutil.copyfile(leaf_export.held_out[0], tmp_path / name)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code, rows, err = _predict(capsys, "--model", leaf_export.path, ".")
    assert code == 0, err
    assert len(rows) == len(names) + 1  # the carriage return did not split a row
    expected = {("'" + n if n[0] in "=+-@" else n) for n in names}
    assert {r[0] for r in rows[1:]} == expected
    assert snapshot(tmp_path) == before


def test_a_named_pipe_is_reported_never_opened(
    leaf_export: LeafExport, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    """Opening a FIFO with no writer waits forever: it must be refused before it is opened."""
    from tlcourse.deploy import _gather

    pipe = tmp_path / "photo.jpg"
    os.mkfifo(pipe)
    leaf = tmp_path / "leaf.jpg"
    shutil.copyfile(leaf_export.held_out[0], leaf)
    files, problems, _ = _gather([str(pipe), str(leaf)])  # checked first: the old code would hang below
    assert files == [leaf] and problems == [
        f"{pipe}: not a regular file or a folder (a pipe, socket or device); give image files or folders of them."]
    code, rows, err = _predict(capsys, "--model", leaf_export.path, pipe, leaf)
    assert code == 1 and [r[0] for r in rows[1:]] == [str(leaf)]
    assert _lines(err)[0] == f"tlcourse predict: {problems[0]}"


def _big_jpeg(source: Path, path: Path, side: int) -> Path:
    """A real leaf photo blown up to ``side`` x ``side`` pixels and saved as a JPEG."""
    with Image.open(source) as img:
        img.convert("RGB").resize((side, side), Image.BILINEAR).save(path, quality=90)
    return path


PEAK_MEMORY = """
import sys
def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
from tlcourse.cli import main
import tlcourse.export, torch  # imported before the baseline: only predict's own memory counts
base = kib("VmRSS")
code = main(["predict", "--model", sys.argv[1], sys.argv[2]])
print("PEAK_MB", (kib("VmHWM") - base) / 1024, file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc (Linux)")
def test_an_8000_px_jpeg_is_decoded_at_a_reduced_scale(
    leaf_export: LeafExport, tmp_path: Path  # noqa: F811
) -> None:
    big = _big_jpeg(leaf_export.held_out[0], tmp_path / "scan.jpg", 8000)
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(leaf_export.path), str(big)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert len(rows) == 2 and rows[1][0] == str(big)
    peak = float(proc.stderr.split("PEAK_MB")[1])
    # a full decode holds 192 MB of pixels plus an RGB copy (~600 MB with the model); 1/8 scale: 3 MB
    assert peak < 300, f"tlcourse predict on an 8000x8000 JPEG raised peak memory by {peak:.0f} MB"
    assert snapshot(tmp_path) == before


def test_ordinary_photos_are_decoded_in_full_and_predicted_as_before(
    leaf_export: LeafExport, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    """The reduced decode is for scans larger than any photo: a 256 px leaf and a 12 MP
    phone-sized photo get the pixels of a plain decode, and the in-memory model's answers."""
    leaf = leaf_export.held_out[1]
    phone = _big_jpeg(leaf, tmp_path / "phone.jpg", 3464)  # 12.0 megapixels
    scan = _big_jpeg(leaf, tmp_path / "scan.jpg", 4096)  # 16.8 megapixels: over DRAFT_ABOVE_PIXELS
    resize = leaf_export.preprocessing.resize_size
    plain = []
    for photo in (leaf, phone):
        with Image.open(photo) as img:
            plain.append(img.convert("RGB"))
        assert open_image(photo, min_size=resize).tobytes() == plain[-1].tobytes()
    # 4096 / (4 x 73) = 14 -> the 1/8 scale: 512 px a side, still 7 x the resize
    assert open_image(scan, min_size=resize).size == (512, 512)
    transform = leaf_export.preprocessing.transforms()
    with torch.inference_mode():
        probs = leaf_export.model.eval()(torch.stack([transform(img) for img in plain])).softmax(1)
    code, rows, err = _predict(capsys, "--model", leaf_export.path, leaf, phone)
    assert code == 0, err
    for row, photo, p in zip(rows[1:], (leaf, phone), probs):
        assert row == [str(photo), leaf_export.class_names[int(p.argmax())], f"{float(p.max()):.4f}"]


def test_predict_into_head_exits_quietly(leaf_export: LeafExport, tmp_path: Path) -> None:  # noqa: F811
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
                          capture_output=True, text=True, env=_env(), timeout=300)
    err = err_file.read_text()
    assert proc.stdout == "path,predicted_class,probability\n"
    assert "Traceback" not in err and "BrokenPipe" not in err and err == "", err
    assert proc.returncode == 141, err
    assert snapshot(tmp_path) == before
