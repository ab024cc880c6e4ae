"""Checkpoints and caches from elsewhere run no code: they are read weights-only (tlcourse/safeload.py).

A hostile file here is a real checkpoint or cache whose payload, if anything unpickled it,
would create a marker file and then hand back the value the loader expected
(tests/hostile_pickles.py). The tests assert that the marker never appears, that a checkpoint
is refused naming the file, that a cache is discarded with a warning and rebuilt, and that
nothing else on disk changed. Hostile model exports are tests/deploy/test_archive_check.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from filesnap import snapshot
from hostile_pickles import torch_payload
from tlcourse.errors import CourseError


# ----------------------------------------------------------------------------- checkpoints and caches


@pytest.fixture(scope="module")
def leaf_features(small_plants):
    """Real penultimate features of real leaf photos (MobileNetV2), as fit's training data."""
    from tlcourse.features import extract_features
    from tlcourse.models import create_model, freeze

    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    return extract_features(model, small_plants, progress=False)


def test_hostile_checkpoint_is_refused_on_resume(leaf_features, tmp_path: Path) -> None:
    from tlcourse.train import fit

    marker = tmp_path / "PAYLOAD_RAN"
    ckpt = tmp_path / "run.pt"
    fit(nn.Linear(1280, 15), leaf_features, leaf_features, epochs=1, progress=False, checkpoint_path=ckpt)
    state = torch.load(ckpt, weights_only=True)  # the course's own checkpoint is plain data
    ckpt.write_bytes(torch_payload(marker, state))
    before = snapshot(tmp_path)
    with pytest.raises(CourseError) as info:
        fit(nn.Linear(1280, 15), leaf_features, leaf_features, epochs=2, progress=False,
            checkpoint_path=ckpt, resume=True)
    assert not marker.exists(), "the payload ran"
    assert str(ckpt) in str(info.value) and "resume" in str(info.value)
    assert snapshot(tmp_path) == before


def test_hostile_dataset_cache_is_discarded_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcourse.data import load_dataset

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "PAYLOAD_RAN"
    clean = load_dataset("pneumoniamnist", 16, progress=False)
    (cache_file,) = (tmp_path / "cache" / "tensors").glob("pneumoniamnist-16px-*.pt")
    payload = {"images": clean.images, "labels": clean.labels, "paths": clean.paths, "splits": clean.splits,
               "count": len(clean)}
    cache_file.write_bytes(torch_payload(marker, payload))
    with pytest.warns(UserWarning, match="discarded") as record:
        again = load_dataset("pneumoniamnist", 16, progress=False)
    assert not marker.exists(), "the payload ran"
    assert any(str(cache_file) in str(w.message) for w in record)
    assert torch.equal(again.images, clean.images) and again.paths == clean.paths
    assert torch.load(cache_file, weights_only=True)["paths"] == clean.paths  # rebuilt as plain data


def test_hostile_feature_cache_is_discarded_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_plants) -> None:
    from tlcourse.features import clear_memory_cache, extract_features
    from tlcourse.models import create_model, freeze

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "PAYLOAD_RAN"
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    data = small_plants.subset(range(8))
    clean = extract_features(model, data, progress=False)
    cache_file = tmp_path / "cache" / "features" / f"{clean.key}.pt"
    cache_file.write_bytes(torch_payload(marker, {"features": clean.features, "labels": clean.labels,
                                                   "classes": clean.classes}))
    clear_memory_cache()
    try:
        with pytest.warns(UserWarning, match="discarded") as record:
            again = extract_features(model, data, progress=False)
    finally:
        clear_memory_cache()
    assert not marker.exists(), "the payload ran"
    assert any(str(cache_file) in str(w.message) for w in record)
    assert torch.equal(again.features, clean.features)
    assert torch.equal(torch.load(cache_file, weights_only=True)["features"], clean.features)


def test_dataset_cache_with_numpy_extras_is_written_as_plain_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """elpv keeps per-image extras as numpy arrays; its cache must still load weights-only.
    (elpv itself is not in the test data, so its payload's shape is built here.)"""
    import numpy as np

    from tlcourse.data.datasets import _cached

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    extras = {"defect_probability": np.array([0.0, 0.33, 1.0], dtype=np.float32),
              "cell_type": np.array(["mono", "poly", "mono"])}
    payload = {"images": torch.zeros(3, 3, 8, 8, dtype=torch.uint8), "labels": torch.tensor([0, 0, 1]),
               "paths": ["a.png", "b.png", "c.png"], "splits": None, "extras": extras}
    first = _cached("extras-test", lambda: payload)
    (cache_file,) = (tmp_path / "tensors").glob("extras-test.pt")
    torch.load(cache_file, weights_only=True)  # no numpy object inside
    again = _cached("extras-test", lambda: pytest.fail("the cache was not used"))
    for key, value in extras.items():
        assert again["extras"][key].dtype == value.dtype and (again["extras"][key] == value).all()
    assert first is payload
