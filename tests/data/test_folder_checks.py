"""The photo-folder checks (tlcourse/data/folder_checks.py) on real leaves, damaged on purpose.

Each hostile folder is a copy of a few real PlantVillage photos (tests/leaf_folders.py) with one
problem added; every problem must be found and named, the folder left exactly as it was, and
nothing in it followed out of the folder or executed.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from filesnap import snapshot
from leaf_folders import CLASSES, image_folder, photos
from tlcourse.data import check_folder, shared_files
from tlcourse.data.folder_checks import ERROR, IMAGEFOLDER_EXTENSIONS, WARNING
from tlcourse.errors import CourseError, InvalidParameterError

pytestmark = pytest.mark.usefixtures("shared_data")


def _finding(report, check: str):
    found = [f for f in report.findings if f.check == check]
    assert len(found) == 1, f"expected one {check!r} finding, got {report.findings}"
    return found[0]


def test_a_clean_folder_has_no_findings_and_imagefolder_loads_exactly_its_files(tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    root = image_folder(tmp_path / "leaves", 3)
    report = check_folder(root, progress=False)
    assert report.findings == [] and report.errors == []
    assert report.classes == sorted(CLASSES)
    assert report.counts == {c: 3 for c in sorted(CLASSES)}
    report.raise_for_errors()  # nothing to raise
    folder = ImageFolder(report.root, is_valid_file=report.is_valid_file)
    assert folder.classes == report.classes
    assert sorted(p for p, _ in folder.samples) == sorted(str(p) for ps in report.files.values() for p in ps)


def test_imagefolder_extensions_are_torchvisions() -> None:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    assert tuple(IMAGEFOLDER_EXTENSIONS) == tuple(IMG_EXTENSIONS)


def test_corrupt_files_a_non_image_an_empty_class_and_a_cross_class_copy_are_each_named(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 4)
    a, b, c = sorted(CLASSES)
    truncated = root / a / photos(a, 0, 1)[0].name
    truncated.write_bytes(truncated.read_bytes()[:3000])
    (root / b / "scan_0001.jpg").write_bytes(b"not a JPEG at all\n" * 50)
    (root / c / "notes.txt").write_text("taken on Tuesday\n")
    (root / "Tomato_healthy").mkdir()
    copied = photos(b, 0, 1)[0].name
    shutil.copyfile(root / b / copied, root / c / "same_leaf.jpg")
    before = snapshot(root)

    report = check_folder(root, progress=False)
    unreadable = _finding(report, "unreadable image")
    assert unreadable.severity == ERROR
    assert str(truncated.resolve()) in unreadable.message and "scan_0001.jpg" in unreadable.message
    assert _finding(report, "not an image").severity == WARNING
    assert f"{c}/notes.txt" in _finding(report, "not an image").message
    assert "Tomato_healthy" in _finding(report, "empty class").message
    duplicate = _finding(report, "same photo in two classes")
    assert f"{b}/{copied} = {c}/same_leaf.jpg" in duplicate.message
    with pytest.raises(CourseError) as info:
        report.raise_for_errors()
    message = str(info.value)
    for name in ("scan_0001.jpg", truncated.name, "Tomato_healthy", "same_leaf.jpg"):
        assert name in message
    assert "4 problem(s)" not in message and "3 problem(s)" in message  # unreadable, duplicate, empty class
    assert snapshot(root) == before  # reported, never repaired or deleted
    assert not report.is_valid_file(str(root / c / "notes.txt"))
    assert not report.is_valid_file(str(truncated.resolve()))


@pytest.mark.parametrize("layout", ["one class", "no class", "not a folder"])
def test_a_single_class_is_refused_with_what_to_do(tmp_path: Path, layout: str) -> None:
    if layout == "one class":
        root = image_folder(tmp_path / "leaves", 3, classes=CLASSES[:1])
    elif layout == "no class":
        root = tmp_path / "loose"
        root.mkdir()
        shutil.copyfile(photos(CLASSES[0], 0, 1)[0], root / "leaf.jpg")
    else:
        root = tmp_path / "leaf.jpg"
        shutil.copyfile(photos(CLASSES[0], 0, 1)[0], root)
    with pytest.raises(CourseError) as info:
        check_folder(root, progress=False)
    message = str(info.value)
    if layout == "not a folder":
        assert "is not a folder" in message
    else:
        assert "a classifier needs at least two classes" in message
        assert "own sub-folder" in message


def test_single_image_classes_and_heavy_imbalance(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 10, classes=CLASSES[:2])
    image_folder(root, 1, classes=CLASSES[2:])
    report = check_folder(root, progress=False)
    assert f"{CLASSES[2]} (1)" in _finding(report, "too few images").message
    heavy = _finding(report, "heavy imbalance")
    assert heavy.severity == WARNING and CLASSES[2] in heavy.message and "only 1" in heavy.message


def test_copies_within_a_class_keep_one_file_and_name_the_others(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3)
    cls = sorted(CLASSES)[0]
    first = sorted((root / cls).iterdir())[0]
    shutil.copyfile(first, root / cls / "zz_again.jpg")
    report = check_folder(root, progress=False)
    copies = _finding(report, "copies within a class")
    assert copies.severity == WARNING and f"{cls}/zz_again.jpg (copy of {cls}/{first.name})" in copies.message
    assert report.counts[cls] == 3 and not report.is_valid_file(str(root.resolve() / cls / "zz_again.jpg"))


def test_tiny_images_and_mixed_colour_modes_are_named(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3)
    a, b, c = sorted(CLASSES)
    leaf = Image.open(photos(a, 0, 1)[0])
    leaf.convert("L").save(root / a / "grey.png")
    leaf.convert("RGBA").save(root / b / "alpha.png")
    leaf.convert("CMYK").save(root / c / "print.jpg")
    leaf.resize((20, 20)).save(root / c / "thumb.jpg")
    report = check_folder(root, progress=False)
    modes = _finding(report, "colour modes").message
    for name in (f"{a}/grey.png (L)", f"{b}/alpha.png (RGBA)", f"{c}/print.jpg (CMYK)"):
        assert name in modes
    assert f"{c}/thumb.jpg (20x20)" in _finding(report, "tiny images").message
    assert report.errors == []


def test_symbolic_links_are_never_followed_out_of_the_folder(tmp_path: Path) -> None:
    outside = image_folder(tmp_path / "elsewhere", 2, classes=CLASSES[:1])
    root = image_folder(tmp_path / "leaves", 3, classes=CLASSES[1:])
    secret = tmp_path / "secret.jpg"
    shutil.copyfile(photos(CLASSES[0], 5, 1)[0], secret)
    os.symlink(secret, root / CLASSES[1] / "link.jpg")
    os.symlink(outside / CLASSES[0], root / CLASSES[2] / "more")
    os.symlink(outside / CLASSES[0], root / "linked_class")
    report = check_folder(root, progress=False)
    links = _finding(report, "symbolic link").message
    assert f"{CLASSES[1]}/link.jpg" in links and f"{CLASSES[2]}/more/" in links
    assert "linked_class" in _finding(report, "linked class folder").message
    assert all(secret.resolve() != p.resolve() for ps in report.files.values() for p in ps)
    assert all(str(p).startswith(str(report.root)) for p in report.sha256)
    with pytest.raises(CourseError, match="linked_class/ is a symbolic link"):
        report.raise_for_errors()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_a_named_pipe_is_never_opened(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3)
    os.mkfifo(root / CLASSES[0] / "camera.jpg")  # opening it would wait forever for a writer
    report = check_folder(root, progress=False)
    assert f"{CLASSES[0]}/camera.jpg" in _finding(report, "not a regular file").message


def test_a_decompression_bomb_is_named_not_decoded(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3)
    Image.new("1", (20_000, 10_000)).save(root / CLASSES[0] / "bomb.png")  # 200 megapixels, a few hundred kB
    report = check_folder(root, progress=False)
    unreadable = _finding(report, "unreadable image").message
    assert "bomb.png" in unreadable and "decompression bomb" in unreadable


def test_shared_files_finds_a_leak_between_splits_by_content(tmp_path: Path) -> None:
    train = image_folder(tmp_path / "train", 3)
    test = image_folder(tmp_path / "test", 2, start=3)
    leaked = sorted((train / CLASSES[0]).iterdir())[0]
    shutil.copyfile(leaked, test / CLASSES[0] / "renamed.jpg")
    train_files = sorted(train.rglob("*.jpg"))
    test_files = sorted(test.rglob("*.jpg"))
    assert shared_files(train_files, test_files) == [(str(leaked), str(test / CLASSES[0] / "renamed.jpg"))]
    assert shared_files(train_files, [p for p in test_files if p.name != "renamed.jpg"]) == []


def test_check_folder_arguments_are_checked(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3)
    with pytest.raises(InvalidParameterError):
        check_folder(root, min_per_class=0, progress=False)
    with pytest.raises(InvalidParameterError):
        check_folder(root, imbalance_ratio=float("nan"), progress=False)
