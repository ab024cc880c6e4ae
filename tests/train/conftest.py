"""Fixtures of the training tests: a frozen MobileNetV2, its real leaf features, fresh heads, backbones."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tlcourse.features import extract_features
from tlcourse.models import create_model, freeze, stage_of_parameters

BACKBONES = ("mobilenet_v2", "efficientnet_lite0")


@pytest.fixture(scope="module")
def frozen_model() -> nn.Module:
    """MobileNetV2 with a new 15-way head, every layer frozen (tests unfreeze what they train)."""
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    return model


@pytest.fixture(scope="module")
def features(frozen_model, small_plants):
    """The frozen backbone's penultimate features of ``small_plants``: fast training data for a head."""
    return extract_features(frozen_model, small_plants, progress=False)


@pytest.fixture
def new_head():
    """``new_head(seed)``: a 1280 -> 15 linear head initialised from ``seed``."""

    def make(seed: int = 0) -> nn.Linear:
        torch.manual_seed(seed)
        return nn.Linear(1280, 15)

    return make


@pytest.fixture(scope="module")
def pristine() -> dict[str, tuple[nn.Module, object]]:
    """``{backbone: (model, preprocessing)}`` with a 3-way head, for the tests to deepcopy."""
    return {name: create_model(name, 3) for name in BACKBONES}


@pytest.fixture(params=BACKBONES)
def model(request, pristine) -> nn.Module:
    return copy.deepcopy(pristine[request.param][0])


@pytest.fixture
def assert_partition():
    """``assert_partition(model, groups)``: every trainable parameter in exactly one group, no frozen one."""

    def check(model: nn.Module, groups: list[dict]) -> None:
        seen = [id(p) for g in groups for p in g["params"]]
        assert len(seen) == len(set(seen))
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert set(seen) == trainable
        owner = stage_of_parameters(model)
        for g in groups:
            assert g["params"], "empty groups must be left out"
            assert len(g["param_names"]) == len(g["params"])
            for name, p in zip(g["param_names"], g["params"]):
                assert model.get_parameter(name) is p
                assert owner[name] == g["stage"]

    return check
