"""Dataset registry, decoded-tensor cache, splits and transforms, on the real data; photo folders
of one's own (``load_image_folder``), damaged on purpose."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from filesnap import snapshot
from leaf_folders import CLASSES, image_folder, photos
from name_errors import assert_unknown_name_lists_the_valid_ones
from tlcourse.data import (
    DATASETS,
    eval_transform,
    limit_images,
    load_dataset,
    load_image_folder,
    split_dataset,
    take_per_class,
    train_transform,
)
from tlcourse.data.registry import display_name, locate
from tlcourse.errors import AssetNotFoundError, CourseError, InvalidParameterError
from tlcourse.models import get_spec

pytestmark = pytest.mark.usefixtures("shared_data")  # no data is a failure, not a skip


@pytest.fixture(scope="module")
def plants():
    return load_dataset("plantvillage", 32, progress=False)


def test_registry_entries_are_complete():
    for name, info in DATASETS.items():
        assert info.licence and info.citation and info.source, name
        assert len(info.class_names) >= 2, name
        assert all(len(e.sha256) == 64 for e in info.manifest), name
    assert len(DATASETS["plantvillage"].manifest) == 2250
    assert display_name("Tomato__Tomato_YellowLeaf__Curl_Virus") == "Tomato: yellow leaf curl virus"
    assert display_name("Pepper__bell___Bacterial_spot") == "Pepper (bell): bacterial spot"
    assert display_name("Potato___healthy") == "Potato: healthy"


def test_plantvillage_loads_all_images_with_clean_labels(plants):
    assert plants.images.shape == (2250, 3, 32, 32) and plants.images.dtype == torch.uint8
    assert set(plants.class_counts().values()) == {150}
    # A second load is served from the tensor cache and is identical.
    again = load_dataset("plantvillage", 32, progress=False)
    assert torch.equal(again.images, plants.images) and torch.equal(again.labels, plants.labels)


def test_official_splits_are_kept():
    xray = load_dataset("pneumoniamnist", 32, progress=False)
    s = split_dataset(xray)
    assert s.sizes() == {"train": 2428, "val": 270, "test": 468}
    bees = load_dataset("hymenoptera", 32, progress=False)
    assert len(bees) == 397  # the placeholder GIF of the official zip is not an ant
    s = split_dataset(bees, seed=0)
    assert len(s.train) == 244 and len(s.val) + len(s.test) == 153


def test_stratified_split_is_deterministic_and_disjoint(plants):
    a, b = split_dataset(plants, seed=3), split_dataset(plants, seed=3)
    c = split_dataset(plants, seed=4)
    assert a.train.paths == b.train.paths and a.train.paths != c.train.paths
    parts = [set(a.train.paths), set(a.val.paths), set(a.test.paths)]
    assert sum(map(len, parts)) == len(plants) and len(set.union(*parts)) == len(plants)
    counts = a.test.class_counts().values()
    assert max(counts) - min(counts) <= 1  # every class in proportion


def test_take_per_class_and_its_error(plants):
    small = take_per_class(plants, 4, seed=0)
    assert set(small.class_counts().values()) == {4}
    assert take_per_class(plants, 4, seed=0).paths == small.paths
    with pytest.raises(InvalidParameterError, match="Use at most 150"):
        take_per_class(plants, 151)
    with pytest.raises(InvalidParameterError, match=r"n_per_class must be an integer >= 1, got 0\."):
        take_per_class(plants, 0)
    limited = limit_images(plants, 300)
    assert 290 <= len(limited) <= 310 and len(limited.class_counts()) == 15


def test_transforms_normalise_with_the_backbones_own_statistics(plants):
    pre = get_spec("efficientnet_lite0").preprocessing.at(32)
    x, y = plants.with_transform(eval_transform(pre))[0]
    raw = plants.images[0].float() / 255
    assert torch.allclose(x, (raw - 127 / 255) / (128 / 255), atol=1e-6)
    aug = plants.with_transform(train_transform(pre, "strong", 32))
    a1, _ = aug[0]
    assert a1.shape == x.shape and a1.dtype == torch.float32
    with pytest.raises(CourseError, match="Valid augmentation presets"):
        train_transform(pre, "extreme")


def test_missing_dataset_error_names_the_dataset_places_and_command(tmp_path, monkeypatch):
    monkeypatch.delenv("TLCOURSE_DATA")
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    with pytest.raises(AssetNotFoundError) as err:
        locate("plantvillage")
    msg = str(err.value)
    assert "'plantvillage'" in msg and str(tmp_path / "data") in msg
    assert "tlcourse data fetch plantvillage" in msg and "tlcourse unpack" in msg
    with pytest.raises(CourseError, match="Did you mean .plantvillage.. Valid datasets: elpv, hymenoptera, plantvillage, pneumoniamnist"):
        load_dataset("plantvilage")


def test_image_size_is_checked():
    with pytest.raises(InvalidParameterError, match=r"image_size must be an integer from 16 to 1024, got 0\."):
        load_dataset("plantvillage", 0)


def test_sizes_and_counts_accept_numpy_integers_but_not_bools(plants):
    # e.g. a size or count read from a NumPy array; True is never a count
    assert torch.equal(load_dataset("plantvillage", np.int64(32), progress=False).images, plants.images)
    assert take_per_class(plants, np.int64(4), seed=0).paths == take_per_class(plants, 4, seed=0).paths
    with pytest.raises(InvalidParameterError, match=r"image_size must be an integer from 16 to 1024, got True\."):
        load_dataset("plantvillage", True)
    with pytest.raises(InvalidParameterError, match=r"n_per_class must be an integer >= 1, got True\."):
        take_per_class(plants, True)


def test_elpv_labels_follow_the_defect_probability():
    elpv = load_dataset("elpv", 32, progress=False)
    probs = elpv.extras["defect_probability"]
    assert np.array_equal(elpv.labels.numpy(), (probs >= 0.5).astype(np.int64))
    assert np.allclose(np.unique(probs), [0, 1 / 3, 2 / 3, 1], atol=0.01)


def test_unknown_dataset_lists_the_valid_ones() -> None:
    assert_unknown_name_lists_the_valid_ones(lambda: load_dataset("plant_village", 64), "dataset", list(DATASETS))


# ----------------------------------------------------------------------------- photo folders of one's own


def test_n_per_class_larger_than_the_class_is_refused_naming_the_classes(tmp_path: Path) -> None:
    """The class sizes are only known once the data is loaded: the refusal comes before training."""
    root = image_folder(tmp_path / "leaves", 4)
    data = load_image_folder(root, 32, progress=False)
    with pytest.raises(InvalidParameterError) as info:
        take_per_class(data, 6, seed=0)
    message = str(info.value)
    assert "n_per_class=6 is more than some classes have" in message
    for cls in CLASSES:
        assert f"{cls}: 4" in message
    assert "Use at most 4" in message
    assert len(take_per_class(data, 4, seed=0)) == 12  # the suggested value works


def test_corrupt_images_are_named_never_dropped(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3)
    truncated = root / CLASSES[0] / photos(CLASSES[0], 0, 1)[0].name
    truncated.write_bytes(truncated.read_bytes()[:4000])  # an interrupted copy
    garbage = root / CLASSES[1] / "scan_0001.jpg"
    garbage.write_bytes(b"this is not a JPEG at all\n" * 40)
    before = snapshot(root)
    with pytest.raises(CourseError) as info:
        load_image_folder(root, 32, progress=False)
    message = str(info.value)
    assert "2 image file(s) could not be decoded" in message
    assert str(truncated) in message and "truncated" in message
    assert str(garbage) in message
    assert "Delete or replace them" in message
    assert snapshot(root) == before  # reported, not deleted or "repaired"


@pytest.mark.parametrize("problem", ["non-image file", "empty class", "single class"])
def test_dataset_folder_problems_name_the_file_or_class(tmp_path: Path, problem: str) -> None:
    """The folder checks (tlcourse/data/folder_checks.py) run first: errors refuse, warnings name."""
    if problem == "single class":
        root = image_folder(tmp_path / "leaves", 3, classes=CLASSES[:1])
    else:
        root = image_folder(tmp_path / "leaves", 3)
    if problem == "non-image file":
        (root / CLASSES[2] / "labels.csv").write_text("file,label\n")
    if problem == "empty class":
        (root / "Tomato_healthy").mkdir()
    before = snapshot(root)
    if problem == "non-image file":
        with pytest.warns(UserWarning, match=f"skipped: {CLASSES[2]}/labels.csv"):
            data = load_image_folder(root, 32, progress=False)
        assert len(data) == 9 and not any(p.endswith(".csv") for p in data.paths)
        assert snapshot(root) == before
        return
    with pytest.raises(CourseError) as info:
        load_image_folder(root, 32, progress=False)
    message = str(info.value)
    if problem == "empty class":
        assert "empty class: class folder(s) with no usable image: Tomato_healthy" in message
    else:
        assert f"has 1 class folder(s) ({CLASSES[0]})" in message and "at least two classes" in message
    assert snapshot(root) == before


def test_a_folder_path_works_wherever_a_dataset_name_does(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3)
    by_path = load_dataset(str(root), 32, progress=False)
    assert by_path.classes == sorted(CLASSES) and len(by_path) == 9
    assert torch.equal(by_path.images, load_image_folder(root, 32, progress=False).images)  # the cache
    assert locate(str(root)) == root.resolve()
