"""Per-stage parameter groups, layer-wise decay, the warm-up + cosine schedule and the
two-phase plan, on the real offline backbones and six real PlantVillage leaves at 64 px."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.models import create_model, keep_frozen_bn_in_eval, stage_names, stage_of_parameters
from tlcourse.models.freezing import find_freezing_traps, freeze, snapshot, trainable_stages, unfreeze_top
from tlcourse.train import TwoPhasePlan, lr_table, stage_param_groups, warmup_cosine

BACKBONES = ("mobilenet_v2", "efficientnet_lite0")


@pytest.fixture(scope="module")
def pristine() -> dict[str, tuple[nn.Module, object]]:
    return {name: create_model(name, 3) for name in BACKBONES}


@pytest.fixture(params=BACKBONES)
def model(request, pristine) -> nn.Module:
    return copy.deepcopy(pristine[request.param][0])


def assert_partition(model: nn.Module, groups: list[dict]) -> None:
    """Every trainable parameter in exactly one group, no frozen one, names matching tensors."""
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(seen) == trainable
    owner = stage_of_parameters(model)
    for g in groups:
        assert g["params"], "empty groups must be left out"
        assert len(g["param_names"]) == len(g["params"])
        for name, p in zip(g["param_names"], g["params"]):
            assert model.get_parameter(name) is p
            assert owner[name] == g["stage"]


def test_layerwise_decay_values_are_exact(model):
    unfreeze_top(model, 3)
    groups = stage_param_groups(model, lr=1e-3, decay=0.5)
    assert_partition(model, groups)
    assert [g["stage"] for g in groups] == ["stage4", "stage5", "top", "head"]
    assert [g["lr"] for g in groups] == [1e-3 * 0.5**3, 1e-3 * 0.5**2, 1e-3 * 0.5, 1e-3]
    assert all(g["weight_decay"] == 0.0 for g in groups)

    unfreeze_top(model, 7)
    groups = stage_param_groups(model, lr=2e-3, decay=0.7)
    assert [g["lr"] for g in groups] == [2e-3 * 0.7**d for d in range(7, -1, -1)]
    assert [g["lr"] for g in stage_param_groups(model, lr=2e-3)] == [2e-3] * 8


def test_decay_depth_counts_trainable_stages_only(pristine):
    model = copy.deepcopy(pristine["mobilenet_v2"][0])
    unfreeze_top(model, 4)  # stage3, stage4, stage5, top, head
    freeze(model, "stage5")  # a gap: stage5 frozen between trainable stages
    groups = stage_param_groups(model, lr=1.0, decay=0.1)
    assert_partition(model, groups)
    assert {g["stage"]: g["lr"] for g in groups} == pytest.approx(
        {"stage3": 1e-3, "stage4": 1e-2, "top": 0.1, "head": 1.0}, rel=1e-12
    )


def test_explicit_lrs_and_their_errors(pristine):
    model = copy.deepcopy(pristine["mobilenet_v2"][0])
    unfreeze_top(model, 2)
    lrs = {"head": 1e-3, "top": 3e-4, "stage5": 1e-4}
    groups = stage_param_groups(model, lrs)
    assert_partition(model, groups)
    assert {g["stage"]: g["lr"] for g in groups} == lrs

    with pytest.raises(CourseError, match="Trainable stage.*stage5.*no learning rate"):
        stage_param_groups(model, {"head": 1e-3, "top": 3e-4})
    with pytest.raises(CourseError, match="frozen stage.*stage4"):
        stage_param_groups(model, {**lrs, "stage4": 1e-5})
    with pytest.raises(CourseError, match="Unknown stage 'stage6'"):
        stage_param_groups(model, {**lrs, "stage6": 1e-5})
    with pytest.raises(InvalidParameterError, match="positive"):
        stage_param_groups(model, {**lrs, "head": -1.0})
    with pytest.raises(InvalidParameterError, match="not both"):
        stage_param_groups(model, lrs, lr=1e-3)
    with pytest.raises(InvalidParameterError, match=r"decay must be in \(0, 1\]"):
        stage_param_groups(model, lr=1e-3, decay=1.5)
    with pytest.raises(InvalidParameterError):
        stage_param_groups(model)
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(CourseError, match="no trainable parameters"):
        stage_param_groups(model, lr=1e-3)


def test_weight_decay_spares_biases_and_norms(model):
    unfreeze_top(model, 2)
    groups = stage_param_groups(model, lr=1e-3, decay=0.5, weight_decay=0.05)
    assert_partition(model, groups)
    decayed = [g for g in groups if g["weight_decay"] == 0.05]
    spared = [g for g in groups if g["weight_decay"] == 0.0]
    assert len(decayed) + len(spared) == len(groups)
    assert {g["stage"] for g in decayed} == {g["stage"] for g in spared} == {"stage5", "top", "head"}
    assert all(p.ndim > 1 for g in decayed for p in g["params"])
    assert all(p.ndim <= 1 for g in spared for p in g["params"])
    assert any(n.endswith("bias") for g in spared for n in g["param_names"])
    by_stage = {}
    for g in groups:
        by_stage.setdefault(g["stage"], set()).add(g["lr"])
    assert all(len(v) == 1 for v in by_stage.values())  # the split keeps each stage's rate

    plain = stage_param_groups(
        model, lr=1e-3, weight_decay=0.05, no_weight_decay_for_norm_and_bias=False
    )
    assert [g["stage"] for g in plain] == ["stage5", "top", "head"]
    assert all(g["weight_decay"] == 0.05 for g in plain)


def test_optimizer_keeps_metadata_and_lr_table(model):
    unfreeze_top(model, 2)
    groups = stage_param_groups(model, lr=1e-3, decay=0.5, weight_decay=0.01)
    optimizer = torch.optim.AdamW(groups)
    assert [g["stage"] for g in optimizer.param_groups] == [g["stage"] for g in groups]
    assert all("param_names" in g for g in optimizer.param_groups)
    assert find_freezing_traps(model.eval(), optimizer) == []

    table = lr_table(optimizer)
    assert list(table.columns) == ["stage", "lr", "weight_decay", "tensors", "parameters"]
    assert table.parameters.sum() == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert table.tensors.sum() == sum(1 for p in model.parameters() if p.requires_grad)
    assert table.set_index("stage").lr.groupby(level=0).first()["stage5"] == pytest.approx(2.5e-4)
    warmup_cosine(optimizer, total_steps=10, warmup_steps=2)
    table = lr_table(optimizer)
    assert "initial_lr" in table.columns
    assert (table.lr == table.initial_lr / 2).all()  # first warm-up step: half the rate
    assert list(lr_table(groups).stage) == list(table.stage)
    plain = lr_table(torch.optim.SGD(model.parameters(), lr=0.1))
    assert list(plain.stage) == ["group 0"] and plain.lr[0] == 0.1


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


def test_two_phase_plan_on_real_leaves(pristine, plant_batch):
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
