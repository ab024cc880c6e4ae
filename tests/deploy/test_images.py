"""Opening photos: named errors, a reduced decode for huge JPEGs only, and no pipe ever opened.

- an 8000 x 8000 JPEG is decoded at a reduced scale, whether it reaches the model through
  ``tlcourse predict`` or through ``ExportedModel.predict`` with a path: memory stays small;
- a normal-size photo gets exactly the pixels, and the predictions, of a plain decode;
- a named pipe among the paths is refused before anything opens it.

The model is the session's real export (tests/deploy/exported_leaves.py, 64 px, resize 73).
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from exported_leaves import LeafExport
from filesnap import snapshot
from tlcourse.deploy import open_image
from tlcourse.deploy.images import DRAFT_ABOVE_PIXELS, gather_images


def _big_jpeg(source: Path, path: Path, side: int) -> Path:
    """A real leaf photo blown up to ``side`` x ``side`` pixels and saved as a JPEG."""
    with Image.open(source) as img:
        img.convert("RGB").resize((side, side), Image.BILINEAR).save(path, quality=90)
    return path


def test_a_named_pipe_is_refused_before_it_is_opened(leaf_export: LeafExport, tmp_path: Path) -> None:
    """Opening a FIFO with no writer waits forever: gathering must not open it (if it did, this
    test would hang here)."""
    pipe = tmp_path / "photo.jpg"
    os.mkfifo(pipe)
    leaf = tmp_path / "leaf.jpg"
    shutil.copyfile(leaf_export.held_out[0], leaf)
    files, problems, skipped = gather_images([str(pipe), str(leaf)])
    assert files == [leaf] and skipped == [] and problems == [
        f"{pipe}: not a regular file or a folder (a pipe, socket or device); give image files or folders of them."]


PEAK_MEMORY = """
import sys
def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
from tlcourse.course.cli import main
from tlcourse.deploy import load_exported
import torch
model_file, photo, door = sys.argv[1:]
exported = load_exported(model_file) if door == "api" else None  # loaded before the baseline
base = kib("VmRSS")  # only the prediction's own memory counts
if door == "api":
    (top,) = exported.predict(photo)
    print(f"path,predicted_class,probability\\n{photo},{top[0][0]},{top[0][1]:.4f}")
    code = 0
else:
    code = main(["predict", "--model", model_file, photo])
print("PEAK_MB", (kib("VmHWM") - base) / 1024, file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def scan_8000(leaf_export: LeafExport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8000 x 8000 JPEG of a real leaf (64 megapixels, 192 MB of pixels decoded in full)."""
    return _big_jpeg(leaf_export.held_out[0], tmp_path_factory.mktemp("scan") / "scan.jpg", 8000)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc (Linux)")
@pytest.mark.parametrize("door", ["cli", "api"])
def test_an_8000_px_jpeg_is_decoded_at_a_reduced_scale(
    door: str, leaf_export: LeafExport, scan_8000: Path, checkout_env: dict[str, str]
) -> None:
    """``tlcourse predict scan.jpg`` and ``load_exported(...).predict("scan.jpg")`` alike."""
    before = snapshot(scan_8000.parent)
    proc = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(leaf_export.path), str(scan_8000), door],
                          capture_output=True, text=True, env=checkout_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert len(rows) == 2 and rows[1][0] == str(scan_8000) and rows[1][1] in leaf_export.class_names
    peak = float(proc.stderr.split("PEAK_MB")[1])
    # a full decode holds 192 MB of pixels plus an RGB copy (~400 MB); 1/8 scale: 3 MB
    assert peak < 300, f"predicting ({door}) on an 8000x8000 JPEG raised peak memory by {peak:.0f} MB"
    assert snapshot(scan_8000.parent) == before


def test_predicting_from_a_path_gets_the_reduced_decode_of_the_command(
    leaf_export: LeafExport, loaded, tmp_path: Path
) -> None:
    """The Python API opens paths as ``tlcourse predict`` does: a scan above
    ``DRAFT_ABOVE_PIXELS`` gives the model the reduced decode, so the two agree."""
    scan = _big_jpeg(leaf_export.held_out[2], tmp_path / "scan.jpg", 4096)  # 16.8 MP
    assert 4096 * 4096 > DRAFT_ABOVE_PIXELS
    transform = loaded.preprocessing.transforms()
    reduced = transform(open_image(scan, min_size=loaded.preprocessing.resize_size))
    with Image.open(scan) as img:
        full = transform(img.convert("RGB"))
    assert not torch.equal(reduced, full)  # otherwise this test could not tell the two apart
    assert torch.equal(loaded.preprocess(scan)[0], reduced)
    assert torch.equal(loaded.preprocess([str(scan)])[0], reduced)
    with torch.inference_mode():
        expected = loaded.model(reduced[None]).softmax(1)[0]
    (top,) = loaded.predict(scan)
    assert top[0] == (loaded.class_names[int(expected.argmax())], pytest.approx(float(expected.max()), abs=1e-6))


def test_ordinary_photos_are_decoded_in_full_and_predicted_as_before(
    leaf_export: LeafExport, loaded, tmp_path: Path, run_predict
) -> None:
    """The reduced decode is for scans larger than any photo: a 256 px leaf and a 12 MP
    phone-sized photo get the pixels of a plain decode, and the in-memory model's answers,
    from the command and from the Python API."""
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
    code, rows, err = run_predict("--model", leaf_export.path, leaf, phone)
    assert code == 0, err
    for row, photo, p in zip(rows[1:], (leaf, phone), probs):
        assert row == [str(photo), leaf_export.class_names[int(p.argmax())], f"{float(p.max()):.4f}"]
    assert torch.equal(loaded.preprocess([leaf, phone]), torch.stack([transform(img) for img in plain]))
