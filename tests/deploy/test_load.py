"""Loading an export back: the same network, predictions from paths and images, wrong files refused.

The export is the session's real one (tests/deploy/exported_leaves.py). Every file that is not
such an export (a missing path, random bytes, a ``torch.save`` state_dict, another
``torch.export`` program, edited metadata) is refused with a message that names the file and
says what to do.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from exported_leaves import IMAGE_SIZE, LeafExport
from tlcourse.deploy import load_exported
from tlcourse.errors import CourseError, InvalidParameterError


def test_exported_network_computes_what_the_model_computes(leaf_export: LeafExport, loaded) -> None:
    x = loaded.preprocess(leaf_export.held_out)
    assert x.shape == (15, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.inference_mode():
        expected = leaf_export.model.eval()(x)
        got = loaded.model(x)
        single = loaded.model(x[:1])  # the batch size is free, down to one image
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(single, expected[:1], rtol=1e-4, atol=1e-4)


def test_predict_top_k_from_paths_and_pil_images(leaf_export: LeafExport, loaded) -> None:
    with torch.inference_mode():
        probs = leaf_export.model.eval()(loaded.preprocess(leaf_export.held_out)).softmax(1)
    top3 = loaded.predict(leaf_export.held_out, top_k=3)
    assert len(top3) == 15 and all(len(row) == 3 for row in top3)
    for row, p in zip(top3, probs):
        values = [v for _, v in row]
        assert values == sorted(values, reverse=True)
        assert row[0][0] == leaf_export.class_names[int(p.argmax())]
        assert row[0][1] == pytest.approx(float(p.max()), abs=1e-5)
    pil = [Image.open(path) for path in leaf_export.held_out[:3]]
    try:
        from_pil = loaded.predict(pil)
        assert [row[0][0] for row in from_pil] == [row[0][0] for row in top3[:3]]
        assert [row[0][1] for row in from_pil] == pytest.approx([row[0][1] for row in top3[:3]], abs=1e-5)
    finally:
        for img in pil:
            img.close()
    one = loaded.predict(leaf_export.held_out[0])  # a single path is a list of one
    assert len(one) == 1 and one[0][0][0] == top3[0][0][0]
    # trained on 10 photos per class, it is far above chance (1 in 15) on unseen photos: a real classifier
    right = sum(row[0][0] == leaf_export.class_names[y] for row, y in zip(top3, leaf_export.held_out_labels))
    assert right >= 6, f"only {right}/15 held-out leaves right"


def test_predict_rejects_bad_top_k_and_inputs(leaf_export: LeafExport, loaded, tmp_path: Path) -> None:
    for k in (0, 16, True, 1.5):
        with pytest.raises(InvalidParameterError, match="top_k"):
            loaded.predict(leaf_export.held_out[:1], top_k=k)
    with pytest.raises(InvalidParameterError, match="No images"):
        loaded.predict([])
    notes = tmp_path / "notes.txt"
    notes.write_text("not a leaf")
    with pytest.raises(CourseError, match="notes.txt is not an image"):
        loaded.predict([notes])


# ----------------------------------------------------------------------------- wrong files


def _message(path: Path) -> str:
    with pytest.raises(CourseError) as info:
        load_exported(path)
    text = str(info.value)
    assert str(path) in text, "the message must name the file"
    return text


def test_missing_file_and_folder(tmp_path: Path) -> None:
    text = _message(tmp_path / "nowhere.pt2")
    assert "No model file" in text and "export_model" in text
    assert "is a folder" in _message(tmp_path)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(os.urandom(4096))
    text = _message(path)
    assert "not a tlcourse model export" in text and "export_model" in text


def test_a_state_dict_saved_with_torch_save(leaf_export: LeafExport, tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(leaf_export.model.state_dict(), path)
    text = _message(path)
    assert "torch.save" in text and "load_state_dict" in text


def test_a_torch_export_program_not_written_by_tlcourse(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt2"
    program = torch.export.export(nn.Linear(4, 2).eval(), (torch.zeros(2, 4),))
    torch.export.save(program, path)
    assert "not one written by tlcourse" in _message(path)


def _rewrite_metadata(source: Path, target: Path, change, member: str = "extra/tlcourse.json") -> None:
    """Copy the export ``source`` to ``target`` with ``change`` applied to the bytes of ``member``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name.endswith(member):
                data = change(data)
            new.writestr(old.getinfo(name), data)


def test_newer_format_and_damaged_metadata(leaf_export: LeafExport, tmp_path: Path) -> None:
    newer = tmp_path / "newer.pt2"

    def bump(data: bytes) -> bytes:
        meta = json.loads(data)
        meta["format_version"] = 99
        return json.dumps(meta).encode()

    _rewrite_metadata(leaf_export.path, newer, bump)
    assert "newer tlcourse" in _message(newer)
    damaged = tmp_path / "damaged.pt2"
    _rewrite_metadata(leaf_export.path, damaged, lambda data: data[: len(data) // 2])
    assert "not valid JSON" in _message(damaged)
    edited = tmp_path / "edited.pt2"
    _rewrite_metadata(leaf_export.path, edited,
                      lambda data: json.dumps({**json.loads(data), "class_names": ["only one"]}).encode())
    assert "class names are invalid" in _message(edited)
    mismatched = tmp_path / "mismatched.pt2"  # metadata of a 14-class model on a 15-output network
    _rewrite_metadata(leaf_export.path, mismatched,
                      lambda data: json.dumps({**json.loads(data), "class_names": leaf_export.class_names[:14]}).encode())
    text = _message(mismatched)
    assert "names 14 classes" in text and "outputs 15 scores" in text and "export the model again" in text
    resized = tmp_path / "resized.pt2"  # preprocessing edited to a size the network was not exported at

    def crop_96(data: bytes) -> bytes:
        meta = json.loads(data)
        meta["preprocessing"]["crop_size"] = 96
        return json.dumps(meta).encode()

    _rewrite_metadata(leaf_export.path, resized, crop_96)
    assert "does not accept the 96x96 px images" in _message(resized)


def test_older_export_with_tensor_sample_inputs_still_loads(leaf_export: LeafExport, tmp_path: Path) -> None:
    """Exports written before tlcourse stopped storing example inputs carry them as a plain
    tensor pickle: the archive check accepts them, and they change nothing."""
    buffer = io.BytesIO()
    torch.save(((torch.randn(2, 3, 64, 64),), {}), buffer)
    path = tmp_path / "older.pt2"
    _rewrite_metadata(leaf_export.path, path, lambda _: buffer.getvalue(), member="data/sample_inputs/model.pt")
    loaded = load_exported(path)
    expected = load_exported(leaf_export.path).predict(leaf_export.held_out[:2])
    assert loaded.predict(leaf_export.held_out[:2]) == expected
