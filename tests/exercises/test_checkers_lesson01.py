"""Lesson 01's checker (``trainable_stages``) and code exercises, on a real MobileNetV2 and a real leaf.

For every code exercise: the right objects pass, and typical wrong ones fail with a message that
names the mistake.
"""
from __future__ import annotations

import pytest
import torch
from stage_setups import train_from, train_only
from torch import nn

from tlcourse.data import decode_images
from tlcourse.errors import CourseError
from tlcourse.exercises.checkers.lesson01 import trainable_stages
from tlcourse.models import get_spec, stage_of_parameters, stage_sequence

BANK = "01_feature_hierarchy"


@pytest.fixture()
def model(mobilenet) -> nn.Module:
    return mobilenet(3)


@pytest.fixture(scope="module")
def leaf_input(plant_images) -> torch.Tensor:
    """One real leaf at 128 px, normalised for MobileNetV2: the exercise notebook's ``x``."""
    leaf = decode_images(plant_images[:1], 128, progress=False)
    return get_spec("mobilenet_v2").preprocessing.normalize(leaf)


# --------------------------------------------------------------------------- the checker


def test_trainable_stages(model):
    expected = ["stage5", "top", "head"]
    assert trainable_stages(train_only(model, expected), expected).correct
    fb = trainable_stages(train_only(model, {"stage5", "head"}), expected)
    assert not fb.correct and fb.message == "top (12 tensors) is frozen but should be trainable."
    fb = trainable_stages(train_only(model, {"stage4", "stage5", "top", "head"}), expected)
    assert not fb.correct and "stage4 (27 tensors, 303,168 weights) is still trainable" in fb.message
    partly = train_only(model, expected)
    partly.features[16].conv[0][0].weight.requires_grad = False
    fb = trainable_stages(partly, expected)
    assert "stage5 is only partly trainable: 1 of 27 tensors are frozen (features.16.conv.0.0.weight)" in fb.message
    with pytest.raises(CourseError, match="Unknown stage 'stage9'"):
        trainable_stages(model, ["stage9", "head"])  # a bank bug, not a learner mistake


# --------------------------------------------------------------------------- 01: stage3_shape


def _after(model: nn.Module, x: torch.Tensor, stage: str) -> torch.Tensor:
    h = x
    with torch.no_grad():
        for name, module in stage_sequence(model).items():
            h = module(h)
            if name == stage:
                return h
    raise AssertionError(stage)


def test_stage3_shape_right(ex, imagenet, leaf_input):
    assert ex.grade("stage3_shape", value=tuple(_after(imagenet, leaf_input, "stage3").shape)).correct
    assert ex.grade("stage3_shape", value=_after(imagenet, leaf_input, "stage3").shape).correct  # torch.Size


def test_stage3_shape_wrong(ex, imagenet, leaf_input):
    fb = ex.grade("stage3_shape", value=tuple(_after(imagenet, leaf_input, "stage4").shape))  # one stage too far
    assert not fb.correct and "not the expected" in fb.message
    fb = ex.grade("stage3_shape", value=tuple(_after(imagenet, leaf_input, "stage3").shape[1:]))  # batch dim dropped
    assert not fb.correct and "Expected 4 items, got 3" in fb.message


# --------------------------------------------------------------------------- 01: stage5_params


def test_stage5_params(ex, imagenet):
    stage_of = stage_of_parameters(imagenet)
    stage5 = [p for n, p in imagenet.named_parameters() if stage_of[n] == "stage5"]
    assert ex.grade("stage5_params", value=sum(p.numel() for p in stage5)).correct
    assert not ex.grade("stage5_params", value=len(stage5)).correct  # tensors, not numbers
    wider = sum(p.numel() for n, p in imagenet.named_parameters() if stage_of[n] in ("stage5", "top"))
    assert not ex.grade("stage5_params", value=wider).correct


# --------------------------------------------------------------------------- 01: freeze_early


@pytest.fixture()
def leaf_model(mobilenet) -> nn.Module:
    return mobilenet(15)


def test_freeze_early_right(ex, leaf_model):
    fb = ex.grade("freeze_early", model=train_from(leaf_model, "stage2"))
    assert fb.correct, fb.message


def test_freeze_early_only_the_stem(ex, leaf_model):
    for name, p in leaf_model.named_parameters():
        p.requires_grad = not name.startswith(("features.0.", "features.1."))
    fb = ex.grade("freeze_early", model=leaf_model)
    assert not fb.correct and "stage1" in fb.message and "still trainable" in fb.message


def test_freeze_early_everything_but_head(ex, leaf_model):
    fb = ex.grade("freeze_early", model=train_only(leaf_model, {"head"}))
    assert not fb.correct and "stage2" in fb.message and "should be trainable" in fb.message


def test_freeze_early_typo(ex, leaf_model):
    for name, p in leaf_model.named_parameters():
        if name.startswith(("features.0.", "features.1.", "features.2.", "features.3.")):
            p.require_grad = False  # the typo: sets a new attribute, freezes nothing
    fb = ex.grade("freeze_early", model=leaf_model)
    assert not fb.correct and "require_grad" in fb.message
