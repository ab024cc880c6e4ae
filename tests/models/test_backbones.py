"""New heads, stage maps, stage sequences and splits of the real offline backbones."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tlcourse.errors import InvalidParameterError
from tlcourse.models import (
    OFFLINE_BACKBONES,
    create_model,
    feature_dim,
    get_head,
    get_spec,
    pooled_features,
    split_at,
    stage_names,
    stage_of_parameters,
    stage_sequence,
)


@pytest.fixture(scope="module")
def leaf_batch(plant_batch):
    return plant_batch[0]


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


def test_bad_num_classes():
    for bad in (1, True, 3.0):
        with pytest.raises(InvalidParameterError) as info:
            create_model("mobilenet_v2", bad)
        assert str(info.value) == (
            f"num_classes must be an integer >= 2, got {bad!r}. A classifier needs at least two classes."
        )


def test_num_classes_may_be_a_numpy_integer():
    model, _ = create_model("mobilenet_v2", np.int64(3), pretrained=False)
    assert get_head(model).out_features == 3
