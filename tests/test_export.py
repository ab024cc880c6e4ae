"""Exporting a trained leaf classifier to one file and loading it back.

The model is real and really trained, just small: MobileNetV2 with a new 15-way head fitted on
cached features of 10 PlantVillage photos per class at 64 px. The export must keep everything
a user of the file needs (class names, preprocessing, provenance, predictions), load with
PyTorch alone, and refuse every file that is not such an export with a message that says so.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import tlcourse
from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.deploy import export_model, load_exported, read_metadata
from tlcourse.models import Preprocessing, create_model, get_head, pooled_features

IMAGE_SIZE = 64
TRAIN_PER_CLASS = 10


@dataclass
class LeafExport:
    """A trained model, the file it was exported to, and photos it never trained on."""

    path: Path
    model: nn.Module
    preprocessing: Preprocessing
    class_names: list[str]
    provenance: dict
    held_out: list[Path]  # one unseen photo per class
    held_out_labels: list[int]


_BUILT: dict[str, LeafExport] = {}


def _build(folder: Path, data_root: Path) -> LeafExport:
    from tlcourse.data import get_info

    info = get_info("plantvillage")
    model, pre = create_model("mobilenet_v2", len(info.class_names), seed=0)
    pre = pre.at(IMAGE_SIZE)
    transform = pre.transforms()
    train, labels, held_out, held_labels = [], [], [], []
    for label, class_folder in enumerate(info.class_folders):
        photos = sorted((data_root / "plantvillage" / class_folder).glob("*.jpg"))
        for path in photos[:TRAIN_PER_CLASS]:
            with Image.open(path) as img:
                train.append(transform(img.convert("RGB")))
            labels.append(label)
        held_out.append(photos[TRAIN_PER_CLASS])
        held_labels.append(label)
    model.eval()
    with torch.no_grad():
        features = pooled_features(model, torch.stack(train))  # the cached-features fast path
    y = torch.tensor(labels)
    head = get_head(model)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(head(features), y).backward()
        optimizer.step()
    train_acc = float((head(features).argmax(1) == y).float().mean())
    provenance = {"backbone": "mobilenet_v2", "dataset": "plantvillage", "train_accuracy": train_acc,
                  "recipe": "head only, cached features"}
    path = export_model(model, folder / "leaves.pt2", class_names=list(info.class_names),
                        preprocessing=pre, provenance=provenance)
    return LeafExport(path, model, pre, list(info.class_names), provenance, held_out, held_labels)


@pytest.fixture(scope="session")
def leaf_export(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> LeafExport:
    """Built once per test session, shared with test_predict.py."""
    if "leaves" not in _BUILT:
        _BUILT["leaves"] = _build(tmp_path_factory.mktemp("export"), shared_data)
    return _BUILT["leaves"]


@pytest.fixture(scope="module")
def loaded(leaf_export: LeafExport):
    return load_exported(leaf_export.path)


# ----------------------------------------------------------------------------- round trip


def test_round_trip_keeps_names_preprocessing_and_provenance(leaf_export: LeafExport, loaded) -> None:
    assert loaded.class_names == leaf_export.class_names
    assert loaded.preprocessing == leaf_export.preprocessing  # crop, resize, mean, std, interpolation
    assert loaded.preprocessing.crop_size == IMAGE_SIZE and loaded.preprocessing.resize_size == 73
    for key, value in leaf_export.provenance.items():
        assert loaded.provenance[key] == value
    assert loaded.provenance["image_size"] == IMAGE_SIZE
    assert loaded.provenance["num_classes"] == 15
    assert loaded.provenance["tlcourse_version"] == tlcourse.__version__
    assert loaded.provenance["torch_version"] == torch.__version__.split("+")[0]
    stamp = dt.datetime.fromisoformat(loaded.provenance["date"])
    assert abs((dt.datetime.now().astimezone() - stamp).total_seconds()) < 3600
    assert loaded.file_size == leaf_export.path.stat().st_size > 5_000_000  # MobileNetV2's weights are in it
    assert "15 classes" in repr(loaded) and "mobilenet_v2" in repr(loaded)


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


def test_export_leaves_the_model_as_it_was_and_writes_atomically(leaf_export: LeafExport, tmp_path: Path) -> None:
    model = leaf_export.model
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    target = tmp_path / "nested" / "model.pt2"
    target.parent.mkdir()
    target.write_bytes(b"an older export")
    export_model(model, target, class_names=leaf_export.class_names, preprocessing=leaf_export.preprocessing,
                 provenance={"backbone": "mobilenet_v2", "run": 2})  # replaces the old file
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.pt2"]  # no temp files left
    assert read_metadata(target)["provenance"]["run"] == 2
    model.eval()


def test_export_refuses_mismatches_and_writes_nothing(leaf_export: LeafExport, tmp_path: Path) -> None:
    target = tmp_path / "model.pt2"
    kwargs = dict(preprocessing=leaf_export.preprocessing, provenance={})
    with pytest.raises(CourseError, match="14 class names"):
        export_model(leaf_export.model, target, class_names=leaf_export.class_names[:14], **kwargs)
    with pytest.raises(InvalidParameterError, match="duplicates"):
        export_model(leaf_export.model, target, class_names=["a"] * 15, **kwargs)
    with pytest.raises(InvalidParameterError, match="Preprocessing"):
        export_model(leaf_export.model, target, class_names=leaf_export.class_names,
                     preprocessing={"mean": 0.5}, provenance={})
    with pytest.raises(InvalidParameterError, match="image_size=128"):
        export_model(leaf_export.model, target, class_names=leaf_export.class_names,
                     preprocessing=leaf_export.preprocessing, provenance={"image_size": 128})
    with pytest.raises(InvalidParameterError, match="provenance must hold only"):
        export_model(leaf_export.model, target, class_names=leaf_export.class_names,
                     preprocessing=leaf_export.preprocessing, provenance={"model": leaf_export.model})
    with pytest.raises(InvalidParameterError, match="crops to 64x64"):
        export_model(leaf_export.model, target, class_names=leaf_export.class_names, example_input=torch.zeros(1, 3, 32, 32), **kwargs)
    assert not target.exists()


def test_the_file_loads_with_pytorch_alone(leaf_export: LeafExport) -> None:
    """Whoever receives the file needs torch, not tlcourse nor torchvision's model code."""
    script = (
        "import json, sys, zipfile, torch\n"
        f"path = {str(leaf_export.path)!r}\n"
        "program = torch.export.load(path)\n"
        "with zipfile.ZipFile(path) as z:\n"
        "    meta = json.loads(z.read(next(n for n in z.namelist() if n.endswith('extra/tlcourse.json'))))\n"
        "size = meta['preprocessing']['crop_size']\n"
        "logits = program.module()(torch.zeros(3, 3, size, size))\n"
        "print(tuple(logits.shape), len(meta['class_names']))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tlcourse', 'torchvision', 'efficientnet_lite_pytorch'}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd="/",
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["(3, 15) 15", "[]"]


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


def _rewrite_metadata(source: Path, target: Path, change) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name.endswith("extra/tlcourse.json"):
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
