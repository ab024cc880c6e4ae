"""Exercises of lessons 03 (freezing) and 04 (feature extraction) on a real MobileNetV2.

For every code exercise: the right objects pass, and typical wrong ones fail with a message that
names the mistake. The non-code questions are graded with the solution notebooks' answers.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from tlcourse.exercises import Exercises, load_bank
from tlcourse.exercises.checkers.lesson04 import head_in_model, pooled_linear_head
from tlcourse.models import create_model, get_head, load_backbone, replace_head

BANKS = Path(__file__).resolve().parents[1] / "exercises" / "banks"


@pytest.fixture(scope="module")
def pristine() -> nn.Module:
    model, _ = create_model("mobilenet_v2", 15)
    return model


@pytest.fixture()
def model(pristine) -> nn.Module:
    return copy.deepcopy(pristine)


def _ex(name: str, tmp_path: Path) -> Exercises:
    return Exercises.load(BANKS / f"{name}.yaml", learner="test", headless=True, progress=tmp_path / "progress.json")


@pytest.fixture()
def ex03(tmp_path) -> Exercises:
    return _ex("03_freezing", tmp_path)


@pytest.fixture()
def ex04(tmp_path) -> Exercises:
    return _ex("04_feature_extraction", tmp_path)


def _freeze_but_head(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad = False
    for p in get_head(model).parameters():
        p.requires_grad = True
    return model


def test_banks_validate():
    assert len(load_bank(BANKS / "03_freezing.yaml")) >= 5
    assert len(load_bank(BANKS / "04_feature_extraction.yaml")) >= 5


# --------------------------------------------------------------------------- 03: freeze_head


def test_freeze_head_right(ex03, model):
    fb = ex03.grade("freeze_head", model=_freeze_but_head(model))
    assert fb.correct, fb.message
    assert "19,215" in fb.message


def test_freeze_head_nothing_frozen(ex03, model):
    fb = ex03.grade("freeze_head", model=model)
    assert not fb.correct
    assert "stem" in fb.message and "still trainable" in fb.message


def test_freeze_head_head_frozen_too(ex03, model):
    for p in model.parameters():
        p.requires_grad = False
    fb = ex03.grade("freeze_head", model=model)
    assert not fb.correct
    assert "head" in fb.message and "frozen but should be trainable" in fb.message


def test_freeze_head_requires_grad_typo(ex03, model):
    for p in model.parameters():
        p.require_grad = False  # the typo: sets a new attribute, freezes nothing
    fb = ex03.grade("freeze_head", model=model)
    assert not fb.correct
    assert "require_grad" in fb.message and "typo" in fb.message


# --------------------------------------------------------------------------- 03: optimizer


def test_optimizer_right(ex03, model):
    _freeze_but_head(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    fb = ex03.grade("optimizer_trainable", model=model, optimizer=opt)
    assert fb.correct, fb.message


def test_optimizer_over_all_parameters(ex03, model):
    _freeze_but_head(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fb = ex03.grade("optimizer_trainable", model=model, optimizer=opt)
    assert not fb.correct
    assert "frozen tensor" in fb.message


def test_optimizer_built_before_head_swap(ex03, model):
    for p in model.parameters():
        p.requires_grad = False
    old_head = get_head(model)
    old_head.requires_grad_(True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    replace_head(model, nn.Linear(1280, 15))  # new head after the optimizer was built
    fb = ex03.grade("optimizer_trainable", model=model, optimizer=opt)
    assert not fb.correct
    assert "not parameters of this model" in fb.message and "missing 2 of 2" in fb.message


def test_optimizer_not_an_optimizer(ex03, model):
    fb = ex03.grade("optimizer_trainable", model=_freeze_but_head(model), optimizer=None)
    assert not fb.correct and "NoneType" in fb.message


# --------------------------------------------------------------------------- 03: BatchNorm in eval


def test_bn_eval_right(ex03, model):
    _freeze_but_head(model).train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad:
            m.eval()
    fb = ex03.grade("bn_eval", model=model)
    assert fb.correct, fb.message


def test_bn_eval_only_train_mode(ex03, model):
    _freeze_but_head(model).train()
    fb = ex03.grade("bn_eval", model=model)
    assert not fb.correct
    assert "training mode" in fb.message and "drift" in fb.message


def test_bn_eval_whole_model_in_eval(ex03, model):
    _freeze_but_head(model).eval()
    fb = ex03.grade("bn_eval", model=model)
    assert not fb.correct
    assert "eval mode" in fb.message and "model.train()" in fb.message


# --------------------------------------------------------------------------- 03: other questions

SOLUTIONS_03 = {
    "head_params": 19215,
    "bn_still_changes": "b",
    "eval_vs_grad": ["a", "c", "d"],
    "late_unfreeze": "b",
    "bn_momentum": 0.122,
}
WRONG_03 = {
    "head_params": 1280 * 15,  # forgot the biases
    "bn_still_changes": "nothing, the backbone is frozen",
    "eval_vs_grad": ["a", "b", "c", "d"],
    "late_unfreeze": "a",
    "bn_momentum": 0.9,
}


@pytest.mark.parametrize("qid", sorted(SOLUTIONS_03))
def test_03_answers(ex03, qid):
    assert ex03.grade(qid, SOLUTIONS_03[qid]).correct
    assert not ex03.grade(qid, WRONG_03[qid]).correct


def test_03_bank_numbers_are_computed_not_guessed(model):
    assert sum(p.numel() for p in _freeze_but_head(model).parameters() if p.requires_grad) == 19215
    assert abs(0.9**20 - 0.1216) < 1e-3


# --------------------------------------------------------------------------- 04: pooled head


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
def test_pooled_head_right(ex04, head):
    fb = ex04.grade("pooled_head", head=head)
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
def test_pooled_head_wrong(ex04, head, words):
    fb = ex04.grade("pooled_head", head=head)
    assert not fb.correct
    for word in words:
        assert word in fb.message, fb.message


def test_pooled_head_frozen_linear():
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 15))
    head[2].requires_grad_(False)
    fb = pooled_linear_head(head, in_features=1280, num_classes=15)
    assert not fb.correct and "frozen" in fb.message


def test_pooled_head_keeps_training_mode():
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(1280, 15)).train()
    assert pooled_linear_head(head, in_features=1280, num_classes=15).correct
    assert head.training


# --------------------------------------------------------------------------- 04: head in the model


@pytest.fixture(scope="module")
def trained_head() -> nn.Linear:
    torch.manual_seed(1)
    return nn.Linear(1280, 15)


def test_head_in_place_right(ex04, model, trained_head):
    replace_head(model, trained_head)
    fb = ex04.grade("head_in_place", model=model, head=trained_head)
    assert fb.correct, fb.message


def test_head_in_place_copy_counts(model, trained_head):
    replace_head(model, copy.deepcopy(trained_head))
    assert head_in_model(model, trained_head).correct


def test_head_in_place_not_done(ex04, model, trained_head):
    fb = ex04.grade("head_in_place", model=model, head=trained_head)
    assert not fb.correct
    assert "different linear layer" in fb.message


def test_head_in_place_fresh_linear(ex04, model, trained_head):
    replace_head(model, nn.Linear(1280, 15))
    fb = ex04.grade("head_in_place", model=model, head=trained_head)
    assert not fb.correct and "random weights" in fb.message


def test_head_in_place_imagenet_classifier(ex04, trained_head):
    fb = ex04.grade("head_in_place", model=load_backbone("mobilenet_v2"), head=trained_head)
    assert not fb.correct and "ImageNet classifier" in fb.message


def test_head_in_place_wrong_position(ex04, model, trained_head):
    model.classifier = trained_head  # replaces Dropout + Linear: nothing at classifier.1 any more
    fb = ex04.grade("head_in_place", model=model, head=trained_head)
    assert not fb.correct and "classifier.1" in fb.message


def test_head_in_place_body_changed(ex04, model, trained_head):
    replace_head(model, trained_head)
    with torch.no_grad():
        model.features[0][0].weight.mul_(0.5)  # the body is no longer the pretrained one
    fb = ex04.grade("head_in_place", model=model, head=trained_head)
    assert not fb.correct and "differ from the pretrained" in fb.message and "features.0.0.weight" in fb.message


def test_head_in_place_layer_added(ex04, model, trained_head):
    replace_head(model, nn.Sequential(nn.ReLU(), trained_head))  # not the head itself: a wrapper around it
    fb = ex04.grade("head_in_place", model=model, head=trained_head)
    assert not fb.correct and "Sequential" in fb.message


# --------------------------------------------------------------------------- 04: other questions

SOLUTIONS_04 = {
    "grid_size": 4,
    "cache_when": ["a", "c"],
    "early_stopping_watches": "b",
    "restored_epoch": 12,
    "curve_left": "a",
}
WRONG_04 = {
    "grid_size": 7,
    "cache_when": ["a", "b"],
    "early_stopping_watches": "the training loss",
    "restored_epoch": 17,
    "curve_left": "b",
}


@pytest.mark.parametrize("qid", sorted(SOLUTIONS_04))
def test_04_answers(ex04, qid):
    assert ex04.grade(qid, SOLUTIONS_04[qid]).correct
    assert not ex04.grade(qid, WRONG_04[qid]).correct


def test_04_grid_size_is_what_the_base_gives(model):
    from tlcourse.models import split_at

    base, _ = split_at(model, "top")
    with torch.no_grad():
        assert base.eval()(torch.zeros(1, 3, 128, 128)).shape[-2:] == (4, 4)
