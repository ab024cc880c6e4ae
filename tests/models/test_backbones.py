"""New heads, stage maps, stage sequences and splits of the real offline backbones."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tlcourse.errors import CourseError, InvalidParameterError
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


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_cut_after_reads_the_head_from_an_earlier_stage(backbone, leaf_batch):
    """The stages above the cut become identities; the new head reads the cut stage's pooled output."""
    from tlcourse.models import create_model, cut_after, get_head, pooled_features, split_at

    model, _ = create_model(backbone, 3, seed=0)
    model.eval()
    images = get_spec(backbone).preprocessing.at(64).normalize(leaf_batch[:4])
    with torch.no_grad():
        bottom, _ = split_at(model, "stage5")
        # EfficientNet-Lite0's head applies its activation (ReLU6) before pooling, to whatever reaches it
        act = nn.ReLU6() if backbone == "efficientnet_lite0" else nn.Identity()
        expected = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(act(bottom(images)), 1), 1)
    cut_after(model, "stage5", 3, seed=0)
    assert get_head(model).in_features == expected.shape[1]
    with torch.no_grad():
        assert torch.allclose(pooled_features(model, images), expected, atol=1e-5)
        assert model(images).shape == (4, 3)
    with pytest.raises(CourseError, match="Unknown stage"):
        cut_after(model, "stage9", 3)


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_pooled_features_after_a_stage_finish_from_its_activations(backbone, leaf_batch):
    """``after=``: from cached activations at a boundary, the same features as from the photos."""
    model, _ = create_model(backbone, 3, seed=0)
    model.eval()
    images = get_spec(backbone).preprocessing.at(64).normalize(leaf_batch[:4])
    with torch.no_grad():
        bottom, _ = split_at(model, "stage3")
        from_photos = pooled_features(model, images)
        from_acts = pooled_features(model, bottom(images), after="stage3")
    assert torch.allclose(from_acts, from_photos, atol=1e-5)
    with pytest.raises(CourseError, match="Unknown stage"):
        pooled_features(model, images, after="head")
