"""Exporting a trained leaf classifier to one file.

The model is real and really trained, just small (tests/deploy/exported_leaves.py). The export
must keep everything a user of the file needs (class names, preprocessing, provenance), load
with PyTorch alone, hold no pickle, and refuse mismatched arguments without writing anything.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import tlcourse
from exported_leaves import IMAGE_SIZE, LeafExport
from tlcourse.deploy import export_model, read_metadata
from tlcourse.errors import CourseError, InvalidParameterError

SAMPLE_INPUTS = "archive/data/sample_inputs/model.pt"
WEIGHTS_CONFIG = "archive/data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "archive/data/constants/model_constants_config.json"


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


def test_own_export_holds_no_pickle(leaf_export: LeafExport) -> None:
    """What export_model writes passes the same inspection (test_load.py checks it loads)."""
    with zipfile.ZipFile(leaf_export.path) as archive:
        assert archive.read(SAMPLE_INPUTS) == b""  # no pickled example inputs
        weights = json.loads(archive.read(WEIGHTS_CONFIG))["config"]
        constants = json.loads(archive.read(CONSTANTS_CONFIG))["config"]
    assert weights and not any(e["use_pickle"] for e in [*weights.values(), *constants.values()])
