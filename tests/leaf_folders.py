"""Photo folders of one's own, made of real PlantVillage leaves (copies, so a test may damage
them): ``root/<class>/<photo>.jpg``, the layout ``load_image_folder`` reads.

Used by tests/data/test_data.py (damaged folders) and the ``tiny_root`` fixture of
tests/conftest.py (a tiny train/val set for the training tests).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from loopback_server import shared_data_dir

PLANTS = shared_data_dir() / "plantvillage"
CLASSES = ("Potato___healthy", "Tomato_Late_blight", "Pepper__bell___Bacterial_spot")


def photos(cls: str, start: int, n: int) -> list[Path]:
    return sorted((PLANTS / cls).glob("*.jpg"))[start:start + n]


def image_folder(root: Path, per_class: int, start: int = 0, classes: tuple[str, ...] = CLASSES) -> Path:
    """``root/<class>/<real PlantVillage photos>`` (copies, so a test may damage them)."""
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for src in photos(cls, start, per_class):
            shutil.copyfile(src, root / cls / src.name)
    return root
