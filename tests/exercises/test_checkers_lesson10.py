"""Lesson 10's code exercises: the right objects pass, typical mistakes fail with a message naming them.

Real inputs: torchvision Compose objects as a learner would write them, and photo folders of real
PlantVillage leaves with renamed copies (the leak) and a same-name different photo (the trap).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from torchvision import transforms

from leaf_folders import CLASSES, image_folder, photos
from tlcourse.exercises import Exercises
from tlcourse.models import get_spec

BANK = "10_your_own_data"
pytestmark = pytest.mark.usefixtures("shared_data")
PRE = get_spec("mobilenet_v2").preprocessing.at(96)


def _compose(*, normalize_first=False, mean=PRE.mean, size=96, drop=None):
    steps = [transforms.RandomResizedCrop(size, scale=(0.5, 1.0)), transforms.RandomHorizontalFlip(),
             transforms.RandomRotation(15), transforms.ColorJitter(0.2, 0.2, 0.2)]
    steps = [s for s in steps if type(s).__name__ != drop]
    tail = [transforms.ToTensor(), transforms.Normalize(mean, PRE.std)]
    return transforms.Compose(tail[:1] + tail[1:] + steps if normalize_first else steps + tail)


def _grade(ex: Exercises, value):
    return ex.grade("training_compose", value=value, image_size=96, mean=PRE.mean, std=PRE.std)


def test_training_compose_right_and_typical_mistakes(ex: Exercises) -> None:
    assert _grade(ex, _compose()).correct
    fb = _grade(ex, _compose(normalize_first=True))
    assert not fb.correct and "Normalize must come last" in fb.message
    fb = _grade(ex, _compose(mean=(0.5, 0.5, 0.5)))
    assert not fb.correct and "the backbone's own" in fb.message
    fb = _grade(ex, _compose(drop="ColorJitter"))
    assert not fb.correct and "ColorJitter is missing" in fb.message
    fb = _grade(ex, _compose(size=224))
    assert not fb.correct and "96 x 96" in fb.message
    fb = _grade(ex, None)  # the student notebook unanswered
    assert not fb.correct and "transforms.Compose" in fb.message


@pytest.fixture()
def split_folders(tmp_path: Path):
    train = image_folder(tmp_path / "train", 3)
    test = image_folder(tmp_path / "test", 2, start=3)
    leaked = sorted((train / CLASSES[0]).iterdir())[0]
    copy = test / CLASSES[0] / "IMG_0001.jpg"
    shutil.copyfile(leaked, copy)
    same_name = sorted((train / CLASSES[1]).iterdir())[0].name
    shutil.copyfile(photos(CLASSES[1], 9, 1)[0], test / CLASSES[1] / same_name)  # another photo, same name
    train_files = sorted(str(p) for p in train.rglob("*.jpg"))
    test_files = sorted(str(p) for p in test.rglob("*.jpg"))
    return train_files, test_files, str(copy), str(test / CLASSES[1] / same_name)


def test_find_the_leak_by_content_not_by_name(ex: Exercises, split_folders) -> None:
    train_files, test_files, copy, same_name = split_folders
    grade = lambda value: ex.grade("find_the_leak", value=value, train_files=train_files, test_files=test_files)  # noqa: E731
    assert grade([copy]).correct and grade((Path(copy),)).correct
    fb = grade([same_name])
    assert not fb.correct and "file *name*" in fb.message
    fb = grade([])
    assert not fb.correct and "1 leaked file(s) are not in your list" in fb.message
    fb = grade([copy, test_files[0]])
    assert not fb.correct and "not copies of a training file" in fb.message
    fb = grade(None)
    assert not fb.correct and "list of test file paths" in fb.message
