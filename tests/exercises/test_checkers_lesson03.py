"""Lesson 03's checkers (freezing, the optimizer of a frozen model, BatchNorm in eval) and exercises.

Right setups pass; typical mistakes are named. The non-code questions are graded with the
solution notebook's answers and with typical wrong ones.
"""
from __future__ import annotations

import pytest
import torch
from stage_setups import params_of, train_only
from torch import nn

from tlcourse.exercises.checkers.lesson03 import (
    bn_eval_in_frozen_stages,
    frozen_except_head,
    optimizer_covers_trainable,
)
from tlcourse.models import get_head, replace_head

BANK = "03_freezing"


@pytest.fixture()
def model(mobilenet) -> nn.Module:
    return mobilenet(3)


@pytest.fixture()
def model15(mobilenet) -> nn.Module:
    return mobilenet(15)


# --------------------------------------------------------------------------- frozen_except_head


def test_frozen_except_head(model):
    fb = frozen_except_head(train_only(model, {"head"}))
    assert fb.correct and "3,843 of 2,227,715 weights" in fb.message
    # Forgot a stage.
    fb = frozen_except_head(train_only(model, {"stage5", "head"}))
    assert not fb.correct and fb.message == "stage5 (27 tensors, 795,264 weights) is still trainable."
    # Froze the new head too.
    fb = frozen_except_head(train_only(model, set()))
    assert not fb.correct and "head (2 tensors) is frozen but should be trainable" in fb.message
    # Froze nothing, with a typo that silently sets another attribute.
    train_only(model, {"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "top", "head"})
    for p in model.parameters():
        p.require_grad = False
    fb = frozen_except_head(model)
    assert not fb.correct and "stem (9 tensors" in fb.message and "top (12 tensors" in fb.message
    assert "'require_grad': a typo for 'requires_grad'" in fb.message
    assert not frozen_except_head((model, None)).correct  # the create_model tuple


def test_freeze_head_right(ex, model15):
    fb = ex.grade("freeze_head", model=train_only(model15, {"head"}))
    assert fb.correct, fb.message
    assert "19,215" in fb.message


def _require_grad_typo(model: nn.Module) -> None:
    for p in model.parameters():
        p.require_grad = False  # the typo: sets a new attribute, freezes nothing


@pytest.mark.parametrize(
    "mistake, words",
    [
        (lambda m: None, ["stem", "still trainable"]),
        (lambda m: train_only(m, set()), ["head", "frozen but should be trainable"]),
        (_require_grad_typo, ["require_grad", "typo"]),
    ],
    ids=["nothing_frozen", "head_frozen_too", "requires_grad_typo"],
)
def test_freeze_head_mistakes(ex, model15, mistake, words):
    mistake(model15)
    fb = ex.grade("freeze_head", model=model15)
    assert not fb.correct
    assert all(w in fb.message for w in words), fb.message


# --------------------------------------------------------------------------- optimizer_covers_trainable


def test_optimizer_covers_trainable(model):
    train_only(model, {"stage5", "top", "head"})
    right = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    fb = optimizer_covers_trainable(model, right)
    assert fb.correct and "all 41 trainable tensors" in fb.message
    missing_top = torch.optim.SGD(params_of(model, {"stage5", "head"}), lr=0.01)
    fb = optimizer_covers_trainable(model, missing_top)
    assert fb.message.startswith("The optimizer is missing 12 of 41 trainable tensors: features.17.conv.0.0.weight,")
    everything = torch.optim.SGD(model.parameters(), lr=0.01)
    fb = optimizer_covers_trainable(model, everything)
    assert "holds 117 frozen tensors (from stem, stage1, stage2, stage3, stage4)" in fb.message
    assert optimizer_covers_trainable(model, everything, allow_frozen=True).correct
    # The optimizer was built before the head was replaced.
    early = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.classifier[1] = nn.Linear(1280, 3)
    fb = optimizer_covers_trainable(model, early)
    assert "2 tensors that are not parameters of this model (shapes [3, 1280], [3])" in fb.message
    assert "missing 2 of 41 trainable tensors: classifier.1.weight, classifier.1.bias" in fb.message
    assert "Expected a torch.optim.Optimizer, got a list" in optimizer_covers_trainable(model, [1]).message


def test_optimizer_right(ex, model15):
    train_only(model15, {"head"})
    opt = torch.optim.AdamW([p for p in model15.parameters() if p.requires_grad], lr=1e-3)
    fb = ex.grade("optimizer_trainable", model=model15, optimizer=opt)
    assert fb.correct, fb.message


def test_optimizer_over_all_parameters(ex, model15):
    train_only(model15, {"head"})
    opt = torch.optim.AdamW(model15.parameters(), lr=1e-3)
    fb = ex.grade("optimizer_trainable", model=model15, optimizer=opt)
    assert not fb.correct
    assert "frozen tensor" in fb.message


def test_optimizer_built_before_head_swap(ex, model15):
    train_only(model15, {"head"})
    opt = torch.optim.AdamW([p for p in model15.parameters() if p.requires_grad], lr=1e-3)
    replace_head(model15, nn.Linear(1280, 15))  # new head after the optimizer was built
    fb = ex.grade("optimizer_trainable", model=model15, optimizer=opt)
    assert not fb.correct
    assert "not parameters of this model" in fb.message and "missing 2 of 2" in fb.message


def test_optimizer_not_an_optimizer(ex, model15):
    fb = ex.grade("optimizer_trainable", model=train_only(model15, {"head"}), optimizer=None)
    assert not fb.correct and "NoneType" in fb.message


# --------------------------------------------------------------------------- bn_eval_in_frozen_stages


def test_bn_eval_in_frozen_stages(model):
    train_only(model, {"stage5", "top", "head"})
    model.train()
    fb = bn_eval_in_frozen_stages(model)
    assert not fb.correct
    assert "stem is frozen but 3 of its 3 BatchNorm layers are in training mode (features.0.1," in fb.message
    assert "stage5" not in fb.message
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and not any(p.requires_grad for p in m.parameters()):
            m.eval()
    fb = bn_eval_in_frozen_stages(model)
    assert fb.correct and "All 39 BatchNorm layers in frozen stages" in fb.message
    model.features[5].conv[1][1].train()  # one stage2 BatchNorm slips back
    fb = bn_eval_in_frozen_stages(model)
    assert fb.message.startswith("- stage2 is frozen but 1 of its 9 BatchNorm layers") and "features.5.conv.1.1" in fb.message
    model.eval()
    fb = bn_eval_in_frozen_stages(model)
    assert not fb.correct and "model.training is False" in fb.message
    nothing_frozen = train_only(model, {"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "top", "head"})
    nothing_frozen.train()
    assert "No BatchNorm layer is frozen" in bn_eval_in_frozen_stages(nothing_frozen).message


def test_bn_eval_right(ex, model15):
    train_only(model15, {"head"}).train()
    for m in model15.modules():
        if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad:
            m.eval()
    fb = ex.grade("bn_eval", model=model15)
    assert fb.correct, fb.message


def test_bn_eval_only_train_mode(ex, model15):
    train_only(model15, {"head"}).train()
    fb = ex.grade("bn_eval", model=model15)
    assert not fb.correct
    assert "training mode" in fb.message and "drift" in fb.message


def test_bn_eval_whole_model_in_eval(ex, model15):
    train_only(model15, {"head"}).eval()
    fb = ex.grade("bn_eval", model=model15)
    assert not fb.correct
    assert "eval mode" in fb.message and "model.train()" in fb.message


# --------------------------------------------------------------------------- other questions

ANSWERS_03 = [  # question, the solution's answer, a typical wrong one
    ("head_params", 19215, 1280 * 15),  # forgot the biases
    ("bn_still_changes", "b", "nothing, the backbone is frozen"),
    ("eval_vs_grad", ["a", "c", "d"], ["a", "b", "c", "d"]),
    ("late_unfreeze", "b", "a"),
    ("bn_momentum", 0.122, 0.9),
]


@pytest.mark.parametrize("qid, right, wrong", ANSWERS_03, ids=[row[0] for row in ANSWERS_03])
def test_03_answers(ex, qid, right, wrong):
    assert ex.grade(qid, right).correct
    assert not ex.grade(qid, wrong).correct


def test_03_bank_numbers_are_computed_not_guessed(model15):
    assert sum(p.numel() for p in get_head(model15).parameters()) == 19215
    assert abs(0.9**20 - 0.1216) < 1e-3


# ----------------------------------------------------------------------------- find the bug (ResNet)

LAYER_LRS = {"layer3": 1e-4, "layer4": 1e-4, "fc": 1e-3}


def _buggy_resnet():
    """The script of the exercise: layer1/layer2 frozen by name, groups built from named layers only."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    for name, p in model.named_parameters():
        if name.startswith(("layer1", "layer2")):
            p.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, 5)
    return model, _named_groups(model)


def _named_groups(model):
    return torch.optim.Adam([
        {"params": model.layer3.parameters(), "lr": 1e-4},
        {"params": model.layer4.parameters(), "lr": 1e-4},
        {"params": model.fc.parameters(), "lr": 1e-3},
    ])


def _stem(model):
    return [*model.conv1.parameters(), *model.bn1.parameters()]


def test_find_the_bug_audit_shows_it_and_the_bug_is_named(ex):
    from tlcourse.models import freeze_audit

    model, optimizer = _buggy_resnet()
    audit = freeze_audit(model, optimizer)
    assert audit.loc["stem", "missing_from_optimizer"] == audit.loc["stem", "trainable"] > 0
    assert (audit.drop(index="stem")["missing_from_optimizer"] == 0).all()
    fb = ex.grade("find_the_bug", model=model, optimizer=optimizer)
    assert not fb.correct and "conv1.weight, bn1.weight, bn1.bias" in fb.message


def test_find_the_bug_both_fixes_pass(ex):
    frozen, _ = _buggy_resnet()
    for p in _stem(frozen):
        p.requires_grad = False
    assert ex.grade("find_the_bug", model=frozen, optimizer=_named_groups(frozen)).correct
    grouped, optimizer = _buggy_resnet()
    optimizer.add_param_group({"params": _stem(grouped), "lr": 1e-5})
    fb = ex.grade("find_the_bug", model=grouped, optimizer=optimizer)
    assert fb.correct and "group of their own" in fb.message


def test_find_the_bug_typical_wrong_fixes_fail(ex):
    model, _ = _buggy_resnet()
    flat = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    fb = ex.grade("find_the_bug", model=model, optimizer=flat)  # covers everything, loses the rates
    assert not fb.correct and "layer3 trains at 0.001" in fb.message
    model, optimizer = _buggy_resnet()
    optimizer.add_param_group({"params": _stem(model), "lr": 1e-3})  # the stem faster than layer3
    fb = ex.grade("find_the_bug", model=model, optimizer=optimizer)
    assert not fb.correct and "bn1, conv1 now train faster" in fb.message
    model, optimizer = _buggy_resnet()
    optimizer.add_param_group({"params": model.layer1.parameters(), "lr": 1e-5})  # frozen tensors handed over
    assert not ex.grade("find_the_bug", model=model, optimizer=optimizer).correct
    assert not ex.grade("find_the_bug", model=model, optimizer=None).correct


def test_bug_symptom(ex):
    assert ex.grade("bug_symptom", "b").correct
    assert not ex.grade("bug_symptom", "c").correct
