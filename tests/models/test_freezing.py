"""Freezing by stage, keep_frozen_bn_in_eval, the freeze audit and the trap detectors.

Runs on the real offline backbones with a batch of six real PlantVillage leaves at 64 px.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tlcourse import models
from tlcourse.errors import CourseError, InvalidParameterError

BACKBONES = ("mobilenet_v2", "efficientnet_lite0")
# Module prefixes of the top two stages and the head, written out independently of the spec.
TOP2_PREFIXES = {
    "mobilenet_v2": tuple(f"features.{i}." for i in range(14, 19)) + ("classifier.1.",),
    "efficientnet_lite0": tuple(f"_blocks.{i}." for i in range(11, 16))
    + ("_conv_head.", "_bn1.", "_fc."),
}
HEAD_PREFIX = {"mobilenet_v2": "classifier.1.", "efficientnet_lite0": "_fc."}


@pytest.fixture(scope="module")
def pristine() -> dict[str, tuple[nn.Module, object]]:
    return {name: models.create_model(name, 3) for name in BACKBONES}


@pytest.fixture(params=BACKBONES)
def setup(request, pristine, plant_batch):
    """A fresh copy of one backbone, and that backbone's normalised real batch and labels."""
    model, prep = pristine[request.param]
    images, labels = plant_batch
    return request.param, copy.deepcopy(model), prep.normalize(images), labels


@pytest.fixture
def mobilenet(pristine, plant_batch):
    """The same as ``setup`` for MobileNetV2 only: for tests that need several full steps
    (EfficientNet-Lite0's backward pass is several times slower on a CPU)."""
    model, prep = pristine["mobilenet_v2"]
    images, labels = plant_batch
    return "mobilenet_v2", copy.deepcopy(model), prep.normalize(images), labels


def n_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x, y, set_to_none: bool = True) -> None:
    optimizer.zero_grad(set_to_none=set_to_none)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def test_freeze_unfreeze_counts(setup):
    name, model, _, _ = setup
    total = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith(HEAD_PREFIX[name]))
    assert head == 1280 * 3 + 3

    assert models.freeze(model) == [s for s in models.stage_names(model) if s != "head"]
    assert n_trainable(model) == head
    assert models.trainable_stages(model) == ["head"]

    assert models.unfreeze(model) == models.stage_names(model)
    assert n_trainable(model) == total

    assert models.unfreeze_top(model, 2) == ["stage5", "top", "head"]
    expected = sum(p.numel() for n, p in model.named_parameters() if n.startswith(TOP2_PREFIXES[name]))
    assert n_trainable(model) == expected
    assert 0 < expected < total

    assert models.unfreeze_top(model, 0) == ["head"]
    assert models.unfreeze_top(model, 7) == models.stage_names(model)
    assert n_trainable(model) == total

    models.freeze(model, "head")
    models.freeze(model, ["stem", "stage1"])
    assert models.trainable_stages(model) == ["stage2", "stage3", "stage4", "stage5", "top"]
    models.unfreeze(model, "stem")
    assert models.trainable_stages(model)[0] == "stem"


def test_bad_stage_names_and_k(pristine):
    model = copy.deepcopy(pristine["mobilenet_v2"][0])
    with pytest.raises(CourseError, match=r"Unknown stage 'stage9'.*Valid stages: head, stage1"):
        models.freeze(model, ["stem", "stage9"])
    with pytest.raises(CourseError, match="Did you mean 'head'"):
        models.unfreeze(model, "heads")
    for k in (-1, 8, 2.0, True):
        with pytest.raises(InvalidParameterError) as info:
            models.unfreeze_top(model, k)
        assert str(info.value) == (
            f"unfreeze_top(model, k): k must be an integer from 0 to 7, got {k!r}. k=0 trains the "
            "head only, k=7 every stage. Stages below the head: stem, stage1, stage2, stage3, "
            "stage4, stage5, top."
        )
    assert n_trainable(model) == sum(p.numel() for p in model.parameters())  # nothing changed


def test_unfreeze_top_accepts_a_numpy_integer(pristine):
    a, b = (copy.deepcopy(pristine["mobilenet_v2"][0]) for _ in range(2))
    assert models.unfreeze_top(a, np.int64(2)) == models.unfreeze_top(b, 2) == ["stage5", "top", "head"]
    assert n_trainable(a) == n_trainable(b)


def test_snapshot_is_a_detached_cpu_copy(pristine):
    model = copy.deepcopy(pristine["mobilenet_v2"][0])
    ref = models.snapshot(model)
    assert "features.0.1.running_mean" in ref and "features.0.1.num_batches_tracked" in ref
    assert set(n for n, _ in model.named_parameters()) <= set(ref)
    assert all(t.device.type == "cpu" and not t.requires_grad for t in ref.values())
    before = ref["classifier.1.weight"].clone()
    with torch.no_grad():
        model.classifier[1].weight.add_(1.0)
    assert torch.equal(ref["classifier.1.weight"], before)


def test_keep_frozen_bn_in_eval_prevents_drift(setup):
    _, model, x, y = setup
    bn_total = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    models.unfreeze_top(model, 1)  # "top" and the head train; the rest is frozen
    bn_top = sum(isinstance(m, nn.BatchNorm2d) for s in ["top"] for m in _stage(model, s).modules())
    model.train()
    assert models.keep_frozen_bn_in_eval(model) == bn_total - bn_top
    assert models.keep_frozen_bn_in_eval(model) == 0  # already done
    ref = models.snapshot(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    train_step(model, optimizer, x, y)

    audit = models.freeze_audit(model, optimizer, ref)
    frozen = audit[audit.status == "frozen"]
    assert list(frozen.index) == ["stem", "stage1", "stage2", "stage3", "stage4", "stage5"]
    assert (frozen.bn_train == 0).all() and (frozen.bn_drift == 0).all()
    assert (frozen.frozen_max_change == 0).all()
    assert audit.loc["top", "bn_drift"] > 0 and audit.loc["top", "bn_train"] == bn_top
    assert models.find_freezing_traps(model, optimizer, ref) == []
    models.check_freezing(model, optimizer, ref)


def _stage(model: nn.Module, stage: str) -> nn.Module:
    return nn.ModuleList(models.stage_modules(model)[stage])


def test_trap_bn_in_train_mode_detected_and_drift_is_real(setup):
    _, model, x, _ = setup
    models.freeze(model)
    model.train()  # the classic mistake: frozen weights, but BatchNorm in train mode
    ref = models.snapshot(model)
    before = models.find_freezing_traps(model)
    assert {t.kind for t in before} == {"bn_train_in_frozen"}
    assert [t.stage for t in before] == [s for s in models.stage_names(model) if s != "head"]
    assert "keep_frozen_bn_in_eval" in before[0].message

    with torch.no_grad():
        model(x)
    audit = models.freeze_audit(model, reference=ref)
    body = audit.drop(index="head")
    assert (body.status == "frozen").all()
    assert (body.bn_drift > 1e-3).all()  # running statistics moved although "frozen"
    assert (body.frozen_max_change == 0).all()  # the weights themselves did not
    kinds = {(t.kind, t.stage) for t in models.find_freezing_traps(model, reference=ref)}
    assert ("bn_stats_drifted", "stem") in kinds and ("bn_stats_drifted", "top") in kinds
    with pytest.raises(models.FreezingError, match="bn_stats_drifted") as info:
        models.check_freezing(model, reference=ref)
    assert all(t.severity == "error" for t in info.value.traps)


def test_trap_optimizer_built_before_unfreezing(setup):
    _, model, x, y = setup
    models.freeze(model)
    model.eval()  # BatchNorm out of the way: this test is about the optimizer
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    assert models.find_freezing_traps(model, optimizer) == []
    models.unfreeze_top(model, 2)  # ...but the optimizer was built before
    ref = models.snapshot(model)
    traps = models.find_freezing_traps(model, optimizer)
    assert [(t.kind, t.stage) for t in traps] == [("not_in_optimizer", "stage5"), ("not_in_optimizer", "top")]
    audit = models.freeze_audit(model, optimizer)
    assert audit.loc["stage5", "missing_from_optimizer"] == audit.loc["stage5", "parameters"]
    assert audit.loc["head", "missing_from_optimizer"] == 0

    train_step(model, optimizer, x, y)  # the trap is real: stage5 gets gradients, never steps
    stage5 = next(n for n, _ in model.named_parameters() if n.startswith(TOP2_PREFIXES[setup[0]][0]))
    assert model.get_parameter(stage5).grad is not None
    assert torch.equal(model.get_parameter(stage5).detach(), ref[stage5])
    head_w = HEAD_PREFIX[setup[0]] + "weight"
    assert not torch.equal(model.get_parameter(head_w).detach(), ref[head_w])
    with pytest.raises(models.FreezingError, match="built before this stage was unfrozen"):
        models.check_freezing(model, optimizer)


def test_frozen_params_in_optimizer_warning_then_error_when_they_move(mobilenet):
    _, model, x, y = mobilenet
    model.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.01)
    train_step(model, optimizer, x, y)  # full fine-tuning step: every tensor gets a .grad
    models.freeze(model)
    ref = models.snapshot(model)
    optimizer.zero_grad(set_to_none=False)  # grads become zero tensors, not None
    traps = models.find_freezing_traps(model, optimizer)
    assert {t.kind for t in traps} == {"frozen_in_optimizer"}
    assert all(t.severity == "error" for t in traps)

    train_step(model, optimizer, x, y, set_to_none=False)  # momentum and decay move "frozen" weights
    changed = [t for t in models.find_freezing_traps(model, optimizer, ref) if t.kind == "frozen_weights_changed"]
    assert [t.stage for t in changed] == [s for s in models.stage_names(model) if s != "head"]
    assert (models.freeze_audit(model, reference=ref).drop(index="head").frozen_max_change > 0).all()

    for p in model.parameters():
        p.grad = None
    traps = models.find_freezing_traps(model, optimizer)
    assert traps and all(t.kind == "frozen_in_optimizer" and t.severity == "warning" for t in traps)
    with pytest.warns(UserWarning, match="frozen_in_optimizer"):
        models.check_freezing(model, optimizer)
    with pytest.raises(models.FreezingError):
        models.check_freezing(model, optimizer, strict=True)


def test_audit_partial_status_and_nothing_trainable(pristine):
    model = copy.deepcopy(pristine["efficientnet_lite0"][0])
    model.eval()
    audit = models.freeze_audit(model)
    assert list(audit.index) == models.stage_names(model)
    assert list(audit.columns) == ["status", "parameters", "trainable", "bn_layers", "bn_train"]
    assert audit.parameters.sum() == sum(p.numel() for p in model.parameters())
    assert audit.bn_layers.sum() == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert (audit.status == "trainable").all() and audit.bn_train.sum() == 0

    model._bn1.weight.requires_grad_(False)
    audit = models.freeze_audit(model)
    assert audit.loc["top", "status"] == "partial"
    assert audit.loc["top", "trainable"] == audit.loc["top", "parameters"] - model._bn1.weight.numel()

    for p in model.parameters():
        p.requires_grad = False  # the plain-PyTorch freezing line, head included
    traps = models.find_freezing_traps(model)
    assert [t.kind for t in traps] == ["nothing_trainable"]


def test_reference_from_another_model_is_rejected(pristine):
    mobilenet = pristine["mobilenet_v2"][0]
    lite = pristine["efficientnet_lite0"][0]
    with pytest.raises(CourseError, match="different model"):
        models.freeze_audit(mobilenet, reference=models.snapshot(lite))
    with pytest.raises(InvalidParameterError, match="param-group"):
        models.freeze_audit(mobilenet, optimizer="adam")
