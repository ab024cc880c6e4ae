"""The real export the deploy tests share: a leaf classifier, really trained, just small.

MobileNetV2 with a new 15-way head fitted on cached features of 10 PlantVillage photos per
class at 64 px, exported with :func:`tlcourse.deploy.export_model`. Built once per test
session (tests/deploy/conftest.py's ``leaf_export`` fixture).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from tlcourse.deploy import export_model
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


def build_leaf_export(folder: Path, data_root: Path) -> LeafExport:
    """Train the head on real photos and export the model to ``folder / "leaves.pt2"``."""
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
