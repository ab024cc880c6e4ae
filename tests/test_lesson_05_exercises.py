"""Lesson 05's exercise bank on a real MobileNetV2: right answers pass, typical mistakes are named.

Every code exercise is graded through the bank (``Exercises.grade``), so the test also checks
that the bank's checker names and fixed arguments fit the checkers.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tlcourse import optim
from tlcourse.errors import InvalidParameterError
from tlcourse.exercises import Exercises
from tlcourse.exercises.checkers.lesson05 import layer_decay_lrs
from tlcourse.models import create_model, stage_of_parameters, trainable_stages, unfreeze_top


@pytest.fixture(scope="module")
def pristine() -> nn.Module:
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    return model


@pytest.fixture()
def model(pristine) -> nn.Module:
    return copy.deepcopy(pristine)


@pytest.fixture()
def ex(tmp_path) -> Exercises:
    return Exercises.load("05_fine_tuning", learner="tester", headless=True, progress=tmp_path / "p.json")


def _params(model: nn.Module, stages: set[str], trainable_only: bool = True) -> list[nn.Parameter]:
    stage_of = stage_of_parameters(model)
    return [p for n, p in model.named_parameters() if stage_of[n] in stages and (p.requires_grad or not trainable_only)]


def _decay_groups(model: nn.Module, lr: float, decay: float, depth_of=None) -> list[dict]:
    live = trainable_stages(model)
    groups = []
    for depth, stage in enumerate(reversed(live)):
        d = depth if depth_of is None else depth_of(depth, stage, live)
        groups.append({"params": _params(model, {stage}), "lr": lr * decay**d})
    return groups


# --------------------------------------------------------------------------- unfreeze_top2


def test_unfreeze_top2_right_loop_passes(model, ex):
    stage_of = stage_of_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad = stage_of[name] in ("stage5", "top", "head")
    assert ex.grade("unfreeze_top2", model=model).correct


def test_unfreeze_top2_nothing_frozen_fails_naming_stages(model, ex):
    fb = ex.grade("unfreeze_top2", model=model)  # create_model leaves everything trainable
    assert not fb.correct
    assert "stage4" in fb.message and "stem" in fb.message


def test_unfreeze_top2_one_stage_too_few_fails_naming_stage5(model, ex):
    unfreeze_top(model, 1)  # top + head only
    fb = ex.grade("unfreeze_top2", model=model)
    assert not fb.correct and "stage5" in fb.message


# --------------------------------------------------------------------------- param_groups_10x


def test_param_groups_10x_right_groups_pass(model, ex):
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW([
        {"params": _params(model, {"stage5", "top"}), "lr": 1e-4},
        {"params": _params(model, {"head"}), "lr": 1e-3},
    ])
    assert ex.grade("param_groups_10x", model=model, optimizer=opt).correct


def test_param_groups_10x_one_group_fails_as_mixed(model, ex):
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    fb = ex.grade("param_groups_10x", model=model, optimizer=opt)
    assert not fb.correct and "mixes the head" in fb.message


def test_param_groups_10x_wrong_ratio_is_named(model, ex):
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW([
        {"params": _params(model, {"stage5", "top"}), "lr": 1e-5},
        {"params": _params(model, {"head"}), "lr": 1e-3},
    ])
    fb = ex.grade("param_groups_10x", model=model, optimizer=opt)
    assert not fb.correct and "head lr / 100" in fb.message


def test_param_groups_10x_frozen_stages_in_base_group_fail(model, ex):
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW([
        {"params": _params(model, {"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "top"}, False), "lr": 1e-4},
        {"params": _params(model, {"head"}), "lr": 1e-3},
    ])
    fb = ex.grade("param_groups_10x", model=model, optimizer=opt)
    assert not fb.correct and "frozen" in fb.message


# --------------------------------------------------------------------------- rebuild_optimizer


def test_rebuild_optimizer_after_unfreezing_passes(model, ex):
    unfreeze_top(model, 0)
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)  # phase 1's
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW(optim.stage_param_groups(model, {"stage5": 1e-4, "top": 1e-4, "head": 1e-4}))
    assert ex.grade("rebuild_optimizer", model=model, optimizer=opt).correct


def test_rebuild_optimizer_stale_phase1_optimizer_fails_naming_missing(model, ex):
    unfreeze_top(model, 0)
    stale = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    unfreeze_top(model, 2)
    fb = ex.grade("rebuild_optimizer", model=model, optimizer=stale)
    assert not fb.correct and "missing" in fb.message and "features.14" in fb.message


def test_rebuild_optimizer_with_every_parameter_fails_naming_frozen(model, ex):
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    fb = ex.grade("rebuild_optimizer", model=model, optimizer=opt)
    assert not fb.correct and "frozen" in fb.message and "stem" in fb.message


def test_rebuild_optimizer_unanswered_is_feedback_not_error(model, ex):
    unfreeze_top(model, 2)
    fb = ex.grade("rebuild_optimizer", model=model, optimizer=None)
    assert not fb.correct and "NoneType" in fb.message


# --------------------------------------------------------------------------- layer_decay (own checker)


def test_layer_decay_right_groups_pass_through_bank(model, ex):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(_decay_groups(model, 1e-3, 0.5))
    fb = ex.grade("layer_decay", model=model, optimizer=opt)
    assert fb.correct, fb.message
    assert "stage4 0.000125" in fb.message


def test_layer_decay_library_groups_pass(model):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(optim.stage_param_groups(model, lr=1e-3, decay=0.5))
    assert layer_decay_lrs(model, opt, lr=1e-3, decay=0.5).correct


def test_layer_decay_counts_initial_lr_under_a_scheduler(model):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(optim.stage_param_groups(model, lr=1e-3, decay=0.5))
    optim.warmup_cosine(opt, total_steps=10, warmup_steps=2)  # lr is now 1/2 of each group's rate
    assert layer_decay_lrs(model, opt, lr=1e-3, decay=0.5).correct


def test_layer_decay_reversed_direction_is_named(model):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(_decay_groups(model, 1e-3, 0.5, depth_of=lambda d, s, live: len(live) - 1 - d))
    fb = layer_decay_lrs(model, opt, lr=1e-3, decay=0.5)
    assert not fb.correct and "wrong way" in fb.message


def test_layer_decay_no_decay_is_named(model):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(_decay_groups(model, 1e-3, 0.5, depth_of=lambda d, s, live: 0))
    fb = layer_decay_lrs(model, opt, lr=1e-3, decay=0.5)
    assert not fb.correct and "same rate" in fb.message


def test_layer_decay_off_by_one_is_named(model):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(_decay_groups(model, 1e-3, 0.5, depth_of=lambda d, s, live: d + 1))
    fb = layer_decay_lrs(model, opt, lr=1e-3, decay=0.5)
    assert not fb.correct and "off by one" in fb.message and "head gets lr itself" in fb.message


def test_layer_decay_one_wrong_stage_names_it_and_its_depth(model):
    unfreeze_top(model, 3)
    groups = _decay_groups(model, 1e-3, 0.5)
    groups[-1]["lr"] = 2.5e-4  # groups run head first: the last is stage4, at decay^2 instead of decay^3
    fb = layer_decay_lrs(model, torch.optim.AdamW(groups), lr=1e-3, decay=0.5)
    assert not fb.correct
    assert "stage4 has lr 0.00025 (lr × decay^2)" in fb.message and "decay^3" in fb.message


def test_layer_decay_group_spanning_stages_is_named(model):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW([
        {"params": _params(model, {"stage4", "stage5", "top"}), "lr": 5e-4},
        {"params": _params(model, {"head"}), "lr": 1e-3},
    ])
    fb = layer_decay_lrs(model, opt, lr=1e-3, decay=0.5)
    assert not fb.correct and "its own group" in fb.message and "stage4" in fb.message


def test_layer_decay_missing_stage_is_named(model):
    unfreeze_top(model, 3)
    groups = _decay_groups(model, 1e-3, 0.5)
    opt = torch.optim.AdamW(groups[:-1])  # groups run head first: stage4, the last, is left out
    fb = layer_decay_lrs(model, opt, lr=1e-3, decay=0.5)
    assert not fb.correct and "missing" in fb.message and "features.11" in fb.message


def test_layer_decay_with_only_the_head_trainable_says_so(model):
    unfreeze_top(model, 0)
    opt = torch.optim.AdamW(_params(model, {"head"}), lr=1e-3)
    fb = layer_decay_lrs(model, opt, lr=1e-3, decay=0.5)
    assert not fb.correct and "unfreeze some stages" in fb.message


def test_layer_decay_bad_bank_arguments_raise(model):
    with pytest.raises(InvalidParameterError):
        layer_decay_lrs(model, None, lr=1e-3, decay=1.5)


# --------------------------------------------------------------------------- questions


def test_numeric_and_choice_answers(ex):
    assert ex.grade("decay_depth3", 1.25e-4).correct
    assert not ex.grade("decay_depth3", 2.5e-4).correct  # decay^2: one level off
    for qid in ("stale_optimizer", "forgetting_symptom", "cache_augmentation"):
        assert ex.grade(qid, "b").correct
        assert not ex.grade(qid, "a").correct
    assert ex.grade("why_warmup", "a").correct
    assert not ex.grade("why_warmup", "b").correct
