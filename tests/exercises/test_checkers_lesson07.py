"""Lesson 07's checkers and code exercises: the right objects pass, typical mistakes fail with a message naming them.

Real inputs throughout: predictions of a MobileNetV2 head on PlantVillage features for the
recall checker, a real export of MobileNetV2 for the export-file checker (its wrong variants
are the same archive with the metadata a mistaken call would have written).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tlcourse.exercises import Exercises
from tlcourse.exercises.checkers.lesson07 import exported_model_file, per_class_recall
from tlcourse.deploy import export_model
from tlcourse.models import create_model, get_head, pooled_features

BANK = "07_case_plant_disease"


@pytest.fixture(scope="module")
def predictions(small_plants) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted classes of 90 real leaves: MobileNetV2 features + a briefly trained head."""
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    model.eval()
    with torch.no_grad():
        x = torch.stack([small_plants[i][0] for i in range(len(small_plants))])
        feats = pooled_features(model, x)
    y = small_plants.labels
    head = get_head(model)
    opt = torch.optim.SGD(head.parameters(), lr=0.05)
    for _ in range(15):  # deliberately short: some mistakes, so recall differs from precision
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(feats), y).backward()
        opt.step()
    with torch.no_grad():
        preds = head(feats).argmax(1)
    return y.numpy(), preds.numpy()


def _recall_precision(labels: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import precision_score, recall_score

    classes = list(range(15))
    return (recall_score(labels, preds, labels=classes, average=None, zero_division=0),
            precision_score(labels, preds, labels=classes, average=None, zero_division=0))


def test_per_class_recall_right_and_typical_mistakes(ex: Exercises, predictions) -> None:
    labels, preds = predictions
    recall, precision = _recall_precision(labels, preds)
    assert not np.allclose(recall, precision), "the fixture must make mistakes for this test to mean anything"
    assert ex.grade("per_class_recall", value=recall, labels=labels, preds=preds).correct
    assert ex.grade("per_class_recall", value=torch.tensor(recall), labels=labels, preds=preds).correct

    fb = ex.grade("per_class_recall", value=precision, labels=labels, preds=preds)
    assert not fb.correct and "precisions" in fb.message and "row sums" in fb.message
    fb = ex.grade("per_class_recall", value=recall * 100, labels=labels, preds=preds)
    assert not fb.correct and "percentages" in fb.message
    fb = ex.grade("per_class_recall", value=float((labels == preds).mean()), labels=labels, preds=preds)
    assert not fb.correct and "one number" in fb.message
    hits = np.array([((labels == c) & (preds == c)).sum() for c in range(15)])
    fb = ex.grade("per_class_recall", value=hits, labels=labels, preds=preds)
    assert not fb.correct and "counts" in fb.message
    fb = ex.grade("per_class_recall", value=None, labels=labels, preds=preds)  # the student notebook unanswered
    assert not fb.correct and "15 recalls" in fb.message
    shifted = recall.copy()
    shifted[3] = 1 - shifted[3] if shifted[3] != 0.5 else 0.0
    fb = per_class_recall(shifted, labels, preds, num_classes=15)
    assert not fb.correct and "class 3" in fb.message


def test_unfreeze_top_two_stages(ex: Exercises, mobilenet) -> None:
    model = mobilenet(15)
    for p in model.parameters():
        p.requires_grad = False
    for module in (model.features[14:], model.classifier):
        for p in module.parameters():
            p.requires_grad = True
    assert ex.grade("unfreeze_top2", model=model).correct
    for p in model.features[11:14].parameters():  # one stage too many
        p.requires_grad = True
    fb = ex.grade("unfreeze_top2", model=model)
    assert not fb.correct and "stage4" in fb.message
    for p in model.features[11:].parameters():  # only the head left trainable
        p.requires_grad = False
    fb = ex.grade("unfreeze_top2", model=model)
    assert not fb.correct and "stage5" in fb.message and "frozen but should be trainable" in fb.message


@pytest.fixture(scope="module")
def export_case(tmp_path_factory: pytest.TempPathFactory):
    from tlcourse.data import get_info

    names = list(get_info("plantvillage").class_names)
    model, pre = create_model("mobilenet_v2", 15, seed=0)
    folder = tmp_path_factory.mktemp("ex07")
    path = export_model(model, folder / "model.pt2", class_names=names, preprocessing=pre.at(64),
                        provenance={"backbone": "mobilenet_v2", "dataset": "plantvillage", "test_accuracy": 0.5})
    return path, names, model


def _variant(source: Path, target: Path, change) -> Path:
    """The same export, with the metadata a mistaken export_model call would have written."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name.endswith("extra/tlcourse.json"):
                meta = json.loads(data)
                change(meta)
                data = json.dumps(meta).encode()
            new.writestr(old.getinfo(name), data)
    return target


def test_export_file_right_and_typical_mistakes(ex: Exercises, export_case, tmp_path: Path) -> None:
    path, names, model = export_case
    fb = ex.grade("export_file", path=path, image_size=64)
    assert fb.correct, fb.message

    def at_224(meta):  # forgot preprocessing.at(image_size)
        meta["preprocessing"].update(crop_size=224, resize_size=256)

    fb = ex.grade("export_file", path=_variant(path, tmp_path / "a.pt2", at_224), image_size=64)
    assert not fb.correct and "crops to 224 px" in fb.message and ".at(image_size)" in fb.message

    def sorted_names(meta):  # class names sorted alphabetically: outputs mislabelled
        meta["class_names"] = sorted(meta["class_names"])

    fb = ex.grade("export_file", path=_variant(path, tmp_path / "b.pt2", sorted_names), image_size=64)
    assert not fb.correct and "another order" in fb.message

    def no_provenance(meta):
        meta["provenance"] = {"image_size": 64}

    fb = ex.grade("export_file", path=_variant(path, tmp_path / "c.pt2", no_provenance), image_size=64)
    assert not fb.correct and "backbone, dataset, test_accuracy" in fb.message

    def tf_lite_stats(meta):  # EfficientNet-Lite's mean/std on a MobileNetV2
        meta["preprocessing"].update(mean=[127 / 255] * 3, std=[128 / 255] * 3)

    fb = ex.grade("export_file", path=_variant(path, tmp_path / "d.pt2", tf_lite_stats), image_size=64)
    assert not fb.correct and "not mobilenet_v2's own" in fb.message

    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)  # saved the weights instead of exporting
    fb = ex.grade("export_file", path=weights, image_size=64)
    assert not fb.correct and "torch.save" in fb.message

    fb = exported_model_file(tmp_path / "never_written.pt2", names, 64)  # the student notebook unanswered
    assert not fb.correct and "export_model(model, path" in fb.message


def test_phase2_optimizer_head_highest_and_built_after_unfreezing(ex: Exercises, mobilenet) -> None:
    model = mobilenet(15)
    early = torch.optim.AdamW(model.classifier.parameters(), lr=1e-3)  # built before unfreezing
    for p in model.parameters():
        p.requires_grad = False
    for module in (model.features[14:], model.classifier):
        for p in module.parameters():
            p.requires_grad = True
    top = [p for p in model.features[14:].parameters() if p.requires_grad]
    head = list(model.classifier.parameters())
    right = torch.optim.AdamW([{"params": top, "lr": 1e-4}, {"params": head, "lr": 1e-3}])
    assert ex.grade("phase2_optimizer", model=model, optimizer=right).correct

    fb = ex.grade("phase2_optimizer", model=model, optimizer=early)  # the unfrozen stages never update
    assert not fb.correct and "missing 39 of 41 trainable tensors" in fb.message
    upside_down = torch.optim.AdamW([{"params": top, "lr": 3e-4}, {"params": head, "lr": 1e-4}])  # lesson 07's old rates
    fb = ex.grade("phase2_optimizer", model=model, optimizer=upside_down)
    assert not fb.correct and "expected head_lr = 0.001" in fb.message
    one_rate = torch.optim.AdamW(top + head, lr=1e-3)
    fb = ex.grade("phase2_optimizer", model=model, optimizer=one_rate)
    assert not fb.correct and "mixes the head" in fb.message
