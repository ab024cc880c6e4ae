"""The warm-up + cosine schedule and the two-phase plan, on a real MobileNetV2 and six real
PlantVillage leaves at 64 px."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.models import keep_frozen_bn_in_eval, stage_names
from tlcourse.models.freezing import find_freezing_traps, snapshot, trainable_stages
from tlcourse.train import TwoPhasePlan, warmup_cosine


def _lrs_over(total: int, warmup: int, min_factor: float = 0.0, base: float = 0.1) -> list[float]:
    layer = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=base)
    scheduler = warmup_cosine(optimizer, total, warmup, min_factor)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_warmup_cosine_shape():
    lrs = _lrs_over(total=100, warmup=10)
    warm, rest = lrs[:10], lrs[10:]
    assert all(b > a for a, b in zip(warm, warm[1:]))  # warm-up rises
    assert warm[0] == pytest.approx(0.01) and warm[-1] == pytest.approx(0.1)
    assert max(lrs) == pytest.approx(0.1)
    assert all(b < a for a, b in zip(rest, rest[1:]))  # cosine falls
    assert rest[45] == pytest.approx(0.05, rel=0.05)  # half-way through the cosine: half
    assert 0 < lrs[-1] < 1e-3  # ends near zero, the last step still moves the weights

    floor = _lrs_over(total=50, warmup=0, min_factor=0.1)
    assert floor[0] == pytest.approx(0.1) and all(b < a for a, b in zip(floor, floor[1:]))
    assert 0.01 < floor[-1] < 0.0102  # ends near min_factor * lr

    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    for total, warmup, low in ((10, 10, 0.0), (0, 0, 0.0), (10, -1, 0.0), (10, 2, 1.5)):
        with pytest.raises(InvalidParameterError):
            warmup_cosine(optimizer, total, warmup, low)


def test_two_phase_plan_on_real_leaves(pristine, plant_batch, assert_partition):
    model = copy.deepcopy(pristine["mobilenet_v2"][0])
    prep = pristine["mobilenet_v2"][1]
    images, labels = plant_batch
    x = prep.normalize(images)
    plan = TwoPhasePlan(head_epochs=2, finetune_epochs=3, head_lr=1e-3, base_lr=1e-4, decay=0.5)

    opt1, sched1 = plan.phase1(model, steps_per_epoch=5)
    assert trainable_stages(model) == ["head"]
    assert [(g["stage"], g["lr"]) for g in opt1.param_groups] == [("head", 1e-3)]
    assert sched1.lr_lambdas[0].total_steps == 10 and sched1.lr_lambdas[0].warmup_steps == 0

    assert plan.phase2_lrs(model) == {"stage5": 5e-5, "top": 1e-4, "head": 1e-4}
    opt2, sched2 = plan.phase2(model, steps_per_epoch=5)
    assert trainable_stages(model) == ["stage5", "top", "head"]
    assert_partition(model, opt2.param_groups)
    assert {g["stage"]: g["initial_lr"] for g in opt2.param_groups} == plan.phase2_lrs(model)
    assert sched2.lr_lambdas[0].total_steps == 15 and sched2.lr_lambdas[0].warmup_steps == 2
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([2.5e-5, 5e-5, 5e-5])

    model.train()
    keep_frozen_bn_in_eval(model)
    # The new optimizer knows the unfrozen stages; the phase-1 one would have missed them.
    assert find_freezing_traps(model, opt2) == []
    assert {t.stage for t in find_freezing_traps(model, opt1)} == {"stage5", "top"}
    ref = snapshot(model)
    opt2.zero_grad()
    nn.functional.cross_entropy(model(x), labels).backward()
    opt2.step()
    sched2.step()
    assert find_freezing_traps(model, opt2, ref) == []
    assert not torch.equal(model.features[14].conv[0][0].weight.detach(), ref["features.14.conv.0.0.weight"])
    assert torch.equal(model.features[13].conv[0][0].weight.detach(), ref["features.13.conv.0.0.weight"])


def test_two_phase_plan_validation(pristine):
    model = copy.deepcopy(pristine["mobilenet_v2"][0])
    for bad in (dict(head_epochs=0, finetune_epochs=0), dict(head_epochs=1, finetune_epochs=1, decay=2.0),
                dict(head_epochs=1, finetune_epochs=1, warmup_fraction=1.0),
                dict(head_epochs=-1, finetune_epochs=1), dict(head_epochs=1, finetune_epochs=1, head_lr=0)):
        with pytest.raises(InvalidParameterError):
            TwoPhasePlan(**bad)
    with pytest.raises(InvalidParameterError, match="0 to 7"):
        TwoPhasePlan(1, 1, unfreeze_top=9).phase2(model, 4)
    with pytest.raises(CourseError, match="0 epochs for phase 2"):
        TwoPhasePlan(2, 0).phase2(model, 4)
    with pytest.raises(InvalidParameterError, match="steps_per_epoch"):
        TwoPhasePlan(2, 1).phase1(model, 0)
    plan = TwoPhasePlan(1, 1, unfreeze_top=7, finetune_head_lr=3e-4)
    assert list(plan.phase2_lrs(model)) == stage_names(model)
    assert plan.phase2_lrs(model)["head"] == 3e-4
    assert math.isclose(TwoPhasePlan(1, 1).phase2_lrs(model)["head"], 1e-4)
