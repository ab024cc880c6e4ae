"""Per-stage parameter groups, layer-wise decay and the learning-rate table, on the real offline
backbones (MobileNetV2, EfficientNet-Lite0)."""
from __future__ import annotations

import copy

import pytest
import torch

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.models.freezing import find_freezing_traps, freeze, unfreeze_top
from tlcourse.train import lr_table, stage_param_groups, warmup_cosine


def test_layerwise_decay_values_are_exact(model, assert_partition):
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


def test_decay_depth_counts_trainable_stages_only(pristine, assert_partition):
    model = copy.deepcopy(pristine["mobilenet_v2"][0])
    unfreeze_top(model, 4)  # stage3, stage4, stage5, top, head
    freeze(model, "stage5")  # a gap: stage5 frozen between trainable stages
    groups = stage_param_groups(model, lr=1.0, decay=0.1)
    assert_partition(model, groups)
    assert {g["stage"]: g["lr"] for g in groups} == pytest.approx(
        {"stage3": 1e-3, "stage4": 1e-2, "top": 0.1, "head": 1.0}, rel=1e-12
    )


def test_explicit_lrs_and_their_errors(pristine, assert_partition):
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


def test_weight_decay_spares_biases_and_norms(model, assert_partition):
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
