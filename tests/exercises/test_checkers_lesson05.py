"""Lesson 05's checkers (discriminative learning rates, layer-wise decay) and exercises, on a real MobileNetV2.

Every code exercise is graded through the bank (``Exercises.grade``) too, so the test also checks
that the bank's checker names and fixed arguments fit the checkers.
"""
from __future__ import annotations

import pytest
import torch
from stage_setups import params_of, train_only
from torch import nn

from tlcourse.errors import InvalidParameterError
from tlcourse.exercises.checkers.lesson05 import (
    discriminative_lrs,
    layer_decay_lrs,
    lr_from_sweep,
    warmup_cosine_scheduler,
)
from tlcourse.models import trainable_stages, unfreeze_top
from tlcourse.train import stage_param_groups, warmup_cosine

BANK = "05_fine_tuning"


@pytest.fixture()
def model(mobilenet) -> nn.Module:
    return mobilenet(15)


def _decay_groups(model: nn.Module, lr: float, decay: float, depth_of=None) -> list[dict]:
    live = trainable_stages(model)
    groups = []
    for depth, stage in enumerate(reversed(live)):
        d = depth if depth_of is None else depth_of(depth, stage, live)
        groups.append({"params": params_of(model, {stage}), "lr": lr * decay**d})
    return groups


def _two_groups(model: nn.Module, base_lr: float, head_lr: float) -> torch.optim.Optimizer:
    """The backbone's trainable stages at ``base_lr``, the head at ``head_lr``."""
    return torch.optim.AdamW([
        {"params": params_of(model, {"stage5", "top"}), "lr": base_lr},
        {"params": params_of(model, {"head"}), "lr": head_lr},
    ])


# --------------------------------------------------------------------------- discriminative_lrs


def test_discriminative_lrs(mobilenet):
    model = train_only(mobilenet(3), {"stage5", "top", "head"})
    base, head = params_of(model, {"stage5", "top"}), params_of(model, {"head"})
    right = _two_groups(model, 1e-4, 1e-3)
    fb = discriminative_lrs(model, right, head_lr=1e-3, ratio=10)
    assert fb.correct and "backbone (stage5, top) lr 0.0001 = head / 10" in fb.message
    assert discriminative_lrs(model, right, ratio=10).correct  # any head lr, ratio only
    fb = discriminative_lrs(model, _two_groups(model, 1e-3, 1e-3), head_lr=1e-3, ratio=10)
    assert fb.message == "Group 0 (stage5, top) has lr 0.001, which is head lr / 1; expected head lr / 10 = 0.0001."
    one_group = torch.optim.AdamW(base + head, lr=1e-3)
    fb = discriminative_lrs(model, one_group, head_lr=1e-3, ratio=10)
    assert "Group 0 mixes the head (2 tensors) with backbone stages (stage5, top; 39 tensors)" in fb.message
    fb = discriminative_lrs(model, _two_groups(model, 1e-5, 1e-4), head_lr=1e-3, ratio=10)
    assert "The head's group (group 1) has lr 0.0001; expected head_lr = 0.001." in fb.message
    frozen_in = torch.optim.AdamW(
        [{"params": [p for p in model.parameters() if p not in set(head)], "lr": 1e-4}, {"params": head, "lr": 1e-3}]
    )
    assert "frozen tensors" in discriminative_lrs(model, frozen_in, head_lr=1e-3).message
    # A warm-up scheduler changes lr; initial_lr is what the learner configured.
    warm = _two_groups(model, 1e-4, 1e-3)
    torch.optim.lr_scheduler.LambdaLR(warm, lambda step: 0.1)
    assert warm.param_groups[0]["lr"] == pytest.approx(1e-5)
    assert discriminative_lrs(model, warm, head_lr=1e-3, ratio=10).correct
    train_only(model, {"head"})
    fb = discriminative_lrs(model, torch.optim.AdamW(head, lr=1e-3), head_lr=1e-3)
    assert "No backbone parameter is trainable" in fb.message


# --------------------------------------------------------------------------- unfreeze_top2


def test_unfreeze_top2_right_loop_passes(model, ex):
    assert ex.grade("unfreeze_top2", model=train_only(model, {"stage5", "top", "head"})).correct


def test_unfreeze_top2_nothing_frozen_fails_naming_stages(model, ex):
    fb = ex.grade("unfreeze_top2", model=model)  # create_model leaves everything trainable
    assert not fb.correct
    assert "stage4" in fb.message and "stem" in fb.message


def test_unfreeze_top2_one_stage_too_few_fails_naming_stage5(model, ex):
    unfreeze_top(model, 1)  # top + head only
    fb = ex.grade("unfreeze_top2", model=model)
    assert not fb.correct and "stage5" in fb.message


# --------------------------------------------------------------------------- param_groups_10x


@pytest.mark.parametrize(
    "base_lr, right, words",
    [(1e-4, True, "head / 10"), (1e-5, False, "head lr / 100")],
    ids=["ratio_10", "ratio_100"],
)
def test_param_groups_10x_ratio(model, ex, base_lr, right, words):
    unfreeze_top(model, 2)
    fb = ex.grade("param_groups_10x", model=model, optimizer=_two_groups(model, base_lr, 1e-3))
    assert fb.correct is right and words in fb.message, fb.message


def test_param_groups_10x_one_group_fails_as_mixed(model, ex):
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    fb = ex.grade("param_groups_10x", model=model, optimizer=opt)
    assert not fb.correct and "mixes the head" in fb.message


def test_param_groups_10x_frozen_stages_in_base_group_fail(model, ex):
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW([
        {"params": params_of(model, {"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "top"}, False), "lr": 1e-4},
        {"params": params_of(model, {"head"}), "lr": 1e-3},
    ])
    fb = ex.grade("param_groups_10x", model=model, optimizer=opt)
    assert not fb.correct and "frozen" in fb.message


# --------------------------------------------------------------------------- rebuild_optimizer


def test_rebuild_optimizer_after_unfreezing_passes(model, ex):
    unfreeze_top(model, 0)
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)  # phase 1's
    unfreeze_top(model, 2)
    opt = torch.optim.AdamW(stage_param_groups(model, {"stage5": 1e-4, "top": 1e-4, "head": 1e-4}))
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


# --------------------------------------------------------------------------- layer_decay_lrs


def test_layer_decay_right_groups_pass_through_bank(model, ex):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(_decay_groups(model, 1e-3, 0.5))
    fb = ex.grade("layer_decay", model=model, optimizer=opt)
    assert fb.correct, fb.message
    assert "stage4 0.000125" in fb.message


def test_layer_decay_library_groups_pass(model):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(stage_param_groups(model, lr=1e-3, decay=0.5))
    assert layer_decay_lrs(model, opt, lr=1e-3, decay=0.5).correct


def test_layer_decay_counts_initial_lr_under_a_scheduler(model):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(stage_param_groups(model, lr=1e-3, decay=0.5))
    warmup_cosine(opt, total_steps=10, warmup_steps=2)  # lr is now 1/2 of each group's rate
    assert layer_decay_lrs(model, opt, lr=1e-3, decay=0.5).correct


@pytest.mark.parametrize(
    "depth_of, words",
    [
        (lambda d, s, live: len(live) - 1 - d, ["wrong way"]),
        (lambda d, s, live: 0, ["same rate"]),
        (lambda d, s, live: d + 1, ["off by one", "head gets lr itself"]),
    ],
    ids=["reversed_direction", "no_decay", "off_by_one"],
)
def test_layer_decay_systematic_mistakes_are_named(model, depth_of, words):
    unfreeze_top(model, 3)
    opt = torch.optim.AdamW(_decay_groups(model, 1e-3, 0.5, depth_of=depth_of))
    fb = layer_decay_lrs(model, opt, lr=1e-3, decay=0.5)
    assert not fb.correct
    assert all(w in fb.message for w in words), fb.message


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
        {"params": params_of(model, {"stage4", "stage5", "top"}), "lr": 5e-4},
        {"params": params_of(model, {"head"}), "lr": 1e-3},
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
    opt = torch.optim.AdamW(params_of(model, {"head"}), lr=1e-3)
    fb = layer_decay_lrs(model, opt, lr=1e-3, decay=0.5)
    assert not fb.correct and "unfreeze some stages" in fb.message


def test_layer_decay_bad_bank_arguments_raise(model):
    with pytest.raises(InvalidParameterError):
        layer_decay_lrs(model, None, lr=1e-3, decay=1.5)
    for lr in (float("inf"), True, 0):  # an infinite rate used to pass as "> 0"
        with pytest.raises(InvalidParameterError, match=rf"needs lr > 0, got {lr!r}\."):
            layer_decay_lrs(model, None, lr=lr, decay=0.5)
    with pytest.raises(InvalidParameterError, match=r"needs 0 < decay < 1, got True\."):
        layer_decay_lrs(model, None, lr=1e-3, decay=True)


# --------------------------------------------------------------------------- questions


def test_numeric_and_choice_answers(ex):
    assert ex.grade("decay_depth3", 1.25e-4).correct
    assert not ex.grade("decay_depth3", 2.5e-4).correct  # decay^2: one level off
    for qid in ("stale_optimizer", "forgetting_symptom", "cache_augmentation"):
        assert ex.grade(qid, "b").correct
        assert not ex.grade(qid, "a").correct
    assert ex.grade("why_warmup", "a").correct
    assert not ex.grade("why_warmup", "b").correct


# ----------------------------------------------------------------------------- a rate from a range test


@pytest.fixture(scope="module")
def sweep(small_plants):
    """A real range test: a new head on the frozen MobileNetV2 features of real leaves."""
    from tlcourse.features import extract_features
    from tlcourse.models import create_model, freeze
    from tlcourse.train import lr_range_test

    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    feats = extract_features(model, small_plants, progress=False)
    torch.manual_seed(0)
    return lr_range_test(nn.Linear(1280, 15), feats, start_lr=1e-6, end_lr=1e3, steps=150, batch_size=16,
                         device="cpu", progress=False)


def test_pick_lr_right(ex, sweep):
    fb = ex.grade("pick_lr", lr=sweep.lr_at_min / 10, sweep=sweep)
    assert fb.correct, fb.message
    assert ex.grade("pick_lr", lr=torch.tensor(sweep.lr_at_min / 5), sweep=sweep).correct


def test_pick_lr_typical_mistakes(ex, sweep):
    at_min = ex.grade("pick_lr", lr=sweep.lr_at_min, sweep=sweep)
    assert not at_min.correct and "lowest point" in at_min.message
    assert "barely below" in ex.grade("pick_lr", lr=sweep.lr_at_min / 1.5, sweep=sweep).message
    flat = ex.grade("pick_lr", lr=sweep.lrs[1], sweep=sweep)  # where nothing moves yet
    assert not flat.correct
    assert "outside the swept range" in ex.grade("pick_lr", lr=1e4, sweep=sweep).message
    assert not ex.grade("pick_lr", lr=-1e-3, sweep=sweep).correct
    assert "Pass the sweep" in ex.grade("pick_lr", lr=1e-3, sweep=[1e-3]).message


def test_pick_lr_flat_start_is_named():
    from tlcourse.train import LRSweep

    lrs = [1e-6 * 10 ** (i / 10) for i in range(61)]
    smoothed = [2.7 if i < 50 else 2.7 - 0.3 * (i - 50) if i < 55 else 1.2 + 0.5 * (i - 55) for i in range(61)]
    sweep = LRSweep(lrs, smoothed, smoothed)
    fb = lr_from_sweep(sweep.lr_at_min / 50, sweep)  # still on the flat part of this curve
    assert not fb.correct and "hardly begun to fall" in fb.message


# ----------------------------------------------------------------------------- warm-up + cosine from torch's schedulers


def _two_group_optimizer():
    layer = nn.Linear(4, 3)
    return torch.optim.AdamW([{"params": [layer.weight], "lr": 1e-4}, {"params": [layer.bias], "lr": 1e-3}])


def _schedule(optimizer, warmup=5, t_max=45, milestone=5):
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    return SequentialLR(optimizer, [LinearLR(optimizer, start_factor=0.1, total_iters=warmup),
                                    CosineAnnealingLR(optimizer, T_max=t_max)], milestones=[milestone])


def test_warmup_cosine_right_and_given_back(ex):
    optimizer = _two_group_optimizer()
    scheduler = _schedule(optimizer)
    before = [g["lr"] for g in optimizer.param_groups]
    fb = ex.grade("warmup_cosine", scheduler=scheduler, optimizer=optimizer)
    assert fb.correct, fb.message
    assert [g["lr"] for g in optimizer.param_groups] == before and scheduler.last_epoch == 0
    assert ex.grade("warmup_cosine", scheduler=scheduler, optimizer=optimizer).correct  # checking twice is fine


@pytest.mark.parametrize("kwargs, words", [
    ({"t_max": 50}, "CosineAnnealingLR(T_max=45)"),  # the cosine over all 50 steps: it never reaches zero
    ({"milestone": 6}, "stays at its peak"),
    ({"warmup": 10, "milestone": 10}, "should reach the configured"),
])
def test_warmup_cosine_typical_mistakes(ex, kwargs, words):
    optimizer = _two_group_optimizer()
    fb = ex.grade("warmup_cosine", scheduler=_schedule(optimizer, **kwargs), optimizer=optimizer)
    assert not fb.correct and words in fb.message, fb.message


def test_warmup_cosine_refuses_other_schedulers_and_optimizers(ex):
    from torch.optim.lr_scheduler import CosineAnnealingLR

    optimizer = _two_group_optimizer()
    fb = ex.grade("warmup_cosine", scheduler=CosineAnnealingLR(optimizer, 50), optimizer=optimizer)
    assert not fb.correct and "SequentialLR([LinearLR, CosineAnnealingLR])" in fb.message
    other = _two_group_optimizer()
    assert "another optimizer" in ex.grade("warmup_cosine", scheduler=_schedule(other), optimizer=optimizer).message
    stepped = _schedule(optimizer)
    optimizer.step()
    stepped.step()
    assert "already been stepped" in ex.grade("warmup_cosine", scheduler=stepped, optimizer=optimizer).message
    with pytest.raises(InvalidParameterError, match="warmup_steps < total_steps"):
        warmup_cosine_scheduler(_schedule(optimizer), optimizer, warmup_steps=50, total_steps=50)


def test_phase2_lower(ex):
    assert ex.grade("phase2_lower", "b").correct
    assert not ex.grade("phase2_lower", "a").correct
