"""Train/eval mode is set and restored module by module (tlcourse.models.modes).

The trap of lesson 03: a fine-tuning model is in train mode, but the BatchNorm layers of its
frozen stages are in eval mode so that their ImageNet statistics stay put. Anything that
switches the model to eval for a moment and then calls ``model.train(was_training)`` puts
those layers back into train mode, and the next training step moves the "frozen" statistics.
Every course function that borrows the model for inference must give it back as it found it.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tlcourse.deploy import measure_latency
from tlcourse.features import extract_features, probe_stages
from tlcourse.models import FlipAverage, create_model, keep_frozen_bn_in_eval, stage_modules, unfreeze_top
from tlcourse.models.modes import evaluating
from tlcourse.train import evaluate, fit

FROZEN = ["stem", "stage1", "stage2", "stage3", "stage4", "stage5"]


def batchnorms(model: nn.Module, stages: list[str]) -> list[nn.Module]:
    return [m for s in stages for top in stage_modules(model)[s] for m in top.modules()
            if isinstance(m, nn.BatchNorm2d)]


@pytest.fixture(scope="module")
def leaves(small_plants):
    """30 real PlantVillage leaves at 64 px, two of each class."""
    from tlcourse.data import take_per_class

    return take_per_class(small_plants, 2, seed=0)


@pytest.fixture(scope="module")
def fine_tuning(leaves) -> nn.Module:
    """MobileNetV2 as lesson 03 sets it up: top stage and head trainable, the rest frozen,
    the model in train mode with the frozen stages' BatchNorm layers in eval mode."""
    model, _ = create_model("mobilenet_v2", len(leaves.classes))
    unfreeze_top(model, 1)
    model.train()
    assert keep_frozen_bn_in_eval(model) == len(batchnorms(model, FROZEN)) > 0
    return model


def _fit(model: nn.Module, data) -> None:
    fit(model, data, val_data=data, epochs=1, batch_size=16, device="cpu", amp=False, progress=False)


CALLS = {
    "fit with val_data": _fit,
    "evaluate": lambda model, data: evaluate(model, data, device="cpu"),
    "extract_features": lambda model, data: extract_features(model, data, device="cpu", cache=False, progress=False),
    "probe_stages": lambda model, data: probe_stages(model, data, data, device="cpu", progress=False),
    "measure_latency": lambda model, data: measure_latency(model, 64, batch_size=2, repeats=1, warmup=0, device="cpu"),
    "FlipAverage": lambda model, data: FlipAverage(model),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_frozen_batchnorm_stays_in_eval_mode(call, fine_tuning, leaves):
    model = copy.deepcopy(fine_tuning)
    CALLS[call](model, leaves)
    frozen_in_train = [m for m in batchnorms(model, FROZEN) if m.training]
    assert frozen_in_train == [], f"{call} put {len(frozen_in_train)} frozen BatchNorm layers into train mode"
    assert model.training and all(m.training for m in batchnorms(model, ["top"]))


def test_evaluating_restores_each_module_even_when_the_block_fails(fine_tuning, leaves):
    model = copy.deepcopy(fine_tuning)
    before = [m.training for m in model.modules()]
    assert len(set(before)) == 2  # mixed: the case model.train(was_training) gets wrong
    with pytest.raises(RuntimeError, match="a failing batch"), evaluating(model):
        assert not any(m.training for m in model.modules())
        raise RuntimeError("a failing batch")
    assert [m.training for m in model.modules()] == before


def test_evaluating_an_exported_graph_needs_fixed_ok():
    """A torch.export graph refuses eval(); only callers that accept its fixed mode (timing) take it."""
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    x = torch.rand(1, 3, 16, 16)
    graph = torch.export.export(module, (x,)).module()
    with pytest.raises(NotImplementedError):
        with evaluating(graph):
            pass
    with evaluating(graph, fixed_ok=True):
        assert torch.allclose(graph(x), module(x))
    assert measure_latency(graph, 16, batch_size=1, repeats=1, warmup=0, device="cpu")["median_ms"] > 0
