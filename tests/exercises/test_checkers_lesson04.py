"""Lesson 04's checkers (a pooled linear head, the trained head put back in the model) and exercises.

For every code exercise: the right objects pass, and typical wrong ones fail with a message that
names the mistake. The non-code questions are graded with the solution notebook's answers and
with typical wrong ones.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tlcourse.errors import InvalidParameterError
from tlcourse.exercises.checkers.lesson04 import head_in_model, pooled_linear_head
from tlcourse.models import replace_head, split_at

BANK = "04_feature_extraction"


@pytest.fixture()
def model(mobilenet) -> nn.Module:
    return mobilenet(15)


# --------------------------------------------------------------------------- pooled head


class MeanHead(nn.Module):
    """A right answer written without nn.Sequential."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1280, 15)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("head", [
    nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 15)),
    nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, 15)),
    MeanHead(),
])
def test_pooled_head_right(ex, head):
    fb = ex.grade("pooled_head", head=head)
    assert fb.correct, fb.message
    assert "19,215" in fb.message


@pytest.mark.parametrize("head, words", [
    (nn.Sequential(nn.Flatten(), nn.Linear(1280 * 16, 15)), ["without pooling", "AdaptiveAvgPool2d"]),
    (nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(1280, 15)), ["max pooling"]),
    (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 15), nn.Softmax(dim=1)), ["softmax", "logits"]),
    (nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(1280, 15)), ["7x5", "AdaptiveAvgPool2d"]),
    (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)), ["1000 outputs"]),
    (nn.Linear(1280, 15), ["failed", "AdaptiveAvgPool2d"]),
    (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 256), nn.ReLU(), nn.Linear(256, 15)), ["2 linear layers"]),
    (None, ["NoneType"]),
])
def test_pooled_head_wrong(ex, head, words):
    fb = ex.grade("pooled_head", head=head)
    assert not fb.correct
    for word in words:
        assert word in fb.message, fb.message


def test_pooled_head_frozen_linear():
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 15))
    head[2].requires_grad_(False)
    fb = pooled_linear_head(head, in_features=1280, num_classes=15)
    assert not fb.correct and "frozen" in fb.message


def test_pooled_head_bank_sizes_may_be_numpy_integers_but_not_bools():
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 15))
    assert pooled_linear_head(head, in_features=np.int64(1280), num_classes=np.int64(15)).correct
    with pytest.raises(InvalidParameterError, match="in_features=True"):
        pooled_linear_head(head, in_features=True, num_classes=15)


def test_pooled_head_keeps_training_mode():
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(1280, 15)).train()
    assert pooled_linear_head(head, in_features=1280, num_classes=15).correct
    assert head.training


# --------------------------------------------------------------------------- head in the model


@pytest.fixture(scope="module")
def trained_head() -> nn.Linear:
    torch.manual_seed(1)
    return nn.Linear(1280, 15)


def test_head_in_place_right(ex, model, trained_head):
    replace_head(model, trained_head)
    fb = ex.grade("head_in_place", model=model, head=trained_head)
    assert fb.correct, fb.message


def test_head_in_place_copy_counts(model, trained_head):
    replace_head(model, copy.deepcopy(trained_head))
    assert head_in_model(model, trained_head).correct


def _halve_first_conv(model: nn.Module, head: nn.Linear) -> None:
    replace_head(model, head)
    with torch.no_grad():
        model.features[0][0].weight.mul_(0.5)  # the body is no longer the pretrained one


@pytest.mark.parametrize(
    "mistake, words",
    [
        (lambda model, head: None, ["different linear layer"]),
        (lambda model, head: replace_head(model, nn.Linear(1280, 15)), ["random weights"]),
        # Replaces Dropout + Linear: nothing at classifier.1 any more.
        (lambda model, head: setattr(model, "classifier", head), ["classifier.1"]),
        (_halve_first_conv, ["differ from the pretrained", "features.0.0.weight"]),
        # Not the head itself: a wrapper around it.
        (lambda model, head: replace_head(model, nn.Sequential(nn.ReLU(), head)), ["Sequential"]),
    ],
    ids=["not_done", "fresh_linear", "wrong_position", "body_changed", "layer_added"],
)
def test_head_in_place_mistakes(ex, model, trained_head, mistake, words):
    mistake(model, trained_head)
    fb = ex.grade("head_in_place", model=model, head=trained_head)
    assert not fb.correct
    assert all(w in fb.message for w in words), fb.message


def test_head_in_place_imagenet_classifier(ex, imagenet, trained_head):
    fb = ex.grade("head_in_place", model=imagenet, head=trained_head)
    assert not fb.correct and "ImageNet classifier" in fb.message


def test_head_in_place_tuple(model, trained_head):
    fb = head_in_model((model, None), trained_head)  # create_model returns (model, preprocessing)
    assert not fb.correct and "You passed a tuple" in fb.message


# --------------------------------------------------------------------------- other questions

ANSWERS_04 = [  # question, the solution's answer, a typical wrong one
    ("grid_size", 4, 7),
    ("cache_when", ["a", "c"], ["a", "b"]),
    ("early_stopping_watches", "b", "the training loss"),
    ("restored_epoch", 12, 17),
    ("curve_left", "a", "b"),
]


@pytest.mark.parametrize("qid, right, wrong", ANSWERS_04, ids=[row[0] for row in ANSWERS_04])
def test_04_answers(ex, qid, right, wrong):
    assert ex.grade(qid, right).correct
    assert not ex.grade(qid, wrong).correct


def test_04_grid_size_is_what_the_base_gives(model):
    base, _ = split_at(model, "top")
    with torch.no_grad():
        assert base.eval()(torch.zeros(1, 3, 128, 128)).shape[-2:] == (4, 4)


# ----------------------------------------------------------------------------- the augmentation Compose

SIZE = 64


def _pipeline(*ops):
    from torchvision.transforms import v2

    return v2.Compose(list(ops))


@pytest.fixture(scope="module")
def steps():
    from torchvision.transforms import v2

    from tlcourse.models import get_spec

    pre = get_spec("mobilenet_v2").preprocessing
    return {
        "crop": v2.RandomResizedCrop(SIZE, scale=(0.6, 1.0), antialias=True),
        "flip": v2.RandomHorizontalFlip(),
        "scale": v2.ToDtype(torch.float32, scale=True),
        "noscale": v2.ToDtype(torch.float32),
        "norm": v2.Normalize(mean=list(pre.mean), std=list(pre.std)),
        "half": v2.Normalize(mean=[0.5] * 3, std=[0.5] * 3),
        "jitter": v2.ColorJitter(0.3, 0.3, 0.3),
        "centre": v2.CenterCrop(SIZE),
        "big": v2.RandomResizedCrop(2 * SIZE, antialias=True),
    }


def test_compose_right(ex, steps):
    s = steps
    fb = ex.grade("compose", transform=_pipeline(s["crop"], s["flip"], s["scale"], s["norm"]), image_size=SIZE)
    assert fb.correct, fb.message
    extra = _pipeline(s["crop"], s["flip"], s["jitter"], s["scale"], s["norm"])  # more augmentation is fine
    assert ex.grade("compose", transform=extra, image_size=SIZE).correct


@pytest.mark.parametrize("names, words", [
    (("crop", "flip", "noscale", "norm"), "not scaled from 0..255"),
    (("crop", "flip", "scale"), "no Normalize step"),
    (("crop", "flip", "scale", "half"), "Normalize uses mean [0.5, 0.5, 0.5]"),
    (("crop", "scale", "norm", "flip"), "RandomHorizontalFlip comes after Normalize"),
    (("crop", "flip", "scale", "norm", "jitter"), "ColorJitter comes after Normalize"),
    (("centre", "scale", "norm"), "identical in 12 calls"),
    (("flip", "scale", "norm"), "no RandomResizedCrop"),
    (("crop", "scale", "norm"), "no RandomHorizontalFlip"),
    (("big", "flip", "scale", "norm"), "expected (3, 64, 64)"),
    (("crop", "flip", "norm"), "put v2.ToDtype(torch.float32, scale=True) before it"),
])
def test_compose_typical_mistakes_are_named(ex, steps, names, words):
    fb = ex.grade("compose", transform=_pipeline(*(steps[n] for n in names)), image_size=SIZE)
    assert not fb.correct
    assert words in fb.message, fb.message


def test_compose_refuses_what_is_not_a_compose(ex):
    import torchvision

    from tlcourse.data import train_transform
    from tlcourse.models import get_spec

    preset = train_transform(get_spec("mobilenet_v2").preprocessing.at(SIZE), "standard", SIZE)
    assert "Expected a transforms.Compose" in ex.grade("compose", transform=preset, image_size=SIZE).message
    v1 = torchvision.transforms.Compose([torchvision.transforms.ToTensor()])
    fb = ex.grade("compose", transform=v1, image_size=SIZE)
    assert not fb.correct and "raised TypeError" in fb.message and "PIL image" in fb.message


def test_normalize_last(ex):
    assert ex.grade("normalize_last", "b").correct
    assert not ex.grade("normalize_last", "d").correct
