"""Code-exercise checkers on a real MobileNetV2: right setups pass, typical mistakes are named."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from tlcourse.errors import CourseError
from tlcourse.exercises import Exercises, read_entries
from tlcourse.exercises.checkers import CHECKERS, get_checker, register_checker
from tlcourse.exercises.checkers.common import value_close, value_equal
from tlcourse.exercises.checkers.lesson01 import trainable_stages
from tlcourse.exercises.checkers.lesson02 import new_head
from tlcourse.exercises.checkers.lesson03 import bn_eval_in_frozen_stages, frozen_except_head, optimizer_covers_trainable
from tlcourse.exercises.checkers.lesson05 import discriminative_lrs
from tlcourse.models import create_model, load_backbone, stage_of_parameters

BANKS = Path(__file__).resolve().parents[1] / "exercises" / "banks"


@pytest.fixture(scope="module")
def pristine() -> nn.Module:
    model, _ = create_model("mobilenet_v2", 3)
    return model


@pytest.fixture()
def model(pristine) -> nn.Module:
    return copy.deepcopy(pristine)


def _train_only(model: nn.Module, stages: set[str]) -> nn.Module:
    stage_of = stage_of_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad = stage_of[name] in stages
    return model


def _params(model: nn.Module, stages: set[str]) -> list[nn.Parameter]:
    stage_of = stage_of_parameters(model)
    return [p for n, p in model.named_parameters() if stage_of[n] in stages and p.requires_grad]


# --------------------------------------------------------------------------- freezing


def test_frozen_except_head(model):
    right = _train_only(copy.deepcopy(model), {"head"})
    fb = frozen_except_head(right)
    assert fb.correct and "3,843 of 2,227,715 weights" in fb.message
    # Forgot a stage.
    fb = frozen_except_head(_train_only(copy.deepcopy(model), {"stage5", "head"}))
    assert not fb.correct and fb.message == "stage5 (27 tensors, 795,264 weights) is still trainable."
    # Froze the new head too.
    fb = frozen_except_head(_train_only(copy.deepcopy(model), set()))
    assert not fb.correct and "head (2 tensors) is frozen but should be trainable" in fb.message
    # Froze nothing, with a typo that silently sets another attribute.
    for p in model.parameters():
        p.require_grad = False
    fb = frozen_except_head(model)
    assert not fb.correct and "stem (9 tensors" in fb.message and "top (12 tensors" in fb.message
    assert "'require_grad': a typo for 'requires_grad'" in fb.message
    assert not frozen_except_head((model, None)).correct  # the create_model tuple


def test_trainable_stages(model):
    expected = ["stage5", "top", "head"]
    assert trainable_stages(_train_only(copy.deepcopy(model), set(expected)), expected).correct
    fb = trainable_stages(_train_only(copy.deepcopy(model), {"stage5", "head"}), expected)
    assert not fb.correct and fb.message == "top (12 tensors) is frozen but should be trainable."
    fb = trainable_stages(_train_only(copy.deepcopy(model), {"stage4", "stage5", "top", "head"}), expected)
    assert not fb.correct and "stage4 (27 tensors, 303,168 weights) is still trainable" in fb.message
    partly = _train_only(copy.deepcopy(model), set(expected))
    partly.features[16].conv[0][0].weight.requires_grad = False
    fb = trainable_stages(partly, expected)
    assert "stage5 is only partly trainable: 1 of 27 tensors are frozen (features.16.conv.0.0.weight)" in fb.message
    with pytest.raises(CourseError, match="Unknown stage 'stage9'"):
        trainable_stages(model, ["stage9", "head"])  # a bank bug, not a learner mistake


def test_bn_eval_in_frozen_stages(model):
    _train_only(model, {"stage5", "top", "head"})
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
    nothing_frozen = _train_only(model, {"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "top", "head"})
    nothing_frozen.train()
    assert "No BatchNorm layer is frozen" in bn_eval_in_frozen_stages(nothing_frozen).message


def test_new_head(model):
    assert new_head(model, 3).correct
    fb = new_head(model, 5)
    assert not fb.correct and fb.message == "The head has 3 outputs; expected 5, one per class."
    imagenet = load_backbone("mobilenet_v2")
    fb = new_head(imagenet, 3)
    assert "1000 outputs (that is still the ImageNet classifier)" in fb.message
    whole = copy.deepcopy(model)
    whole.classifier = nn.Linear(1280, 3)  # dropped the Dropout before the head
    fb = new_head(whole, 3)
    assert "no module at classifier.1" in fb.message and "model.classifier[1] = nn.Linear" in fb.message
    scratch, _ = create_model("mobilenet_v2", 3, pretrained=False)
    fb = new_head(scratch, 3)
    assert "differ from the ImageNet weights" in fb.message and "pretrained=False" in fb.message
    assert new_head(scratch, 3, pretrained=False).correct
    narrow = copy.deepcopy(model)
    narrow.classifier[1] = nn.Linear(640, 3)
    assert "reads 640 features, but the backbone gives 1280" in new_head(narrow, 3).message


# --------------------------------------------------------------------------- optimizers


def test_optimizer_covers_trainable(model):
    trainable = {"stage5", "top", "head"}
    _train_only(model, trainable)
    right = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    fb = optimizer_covers_trainable(model, right)
    assert fb.correct and "all 41 trainable tensors" in fb.message
    missing_top = torch.optim.SGD(_params(model, {"stage5", "head"}), lr=0.01)
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


def test_discriminative_lrs(model):
    _train_only(model, {"stage5", "top", "head"})
    base, head = _params(model, {"stage5", "top"}), _params(model, {"head"})
    right = torch.optim.AdamW([{"params": base, "lr": 1e-4}, {"params": head, "lr": 1e-3}])
    fb = discriminative_lrs(model, right, head_lr=1e-3, ratio=10)
    assert fb.correct and "backbone (stage5, top) lr 0.0001 = head / 10" in fb.message
    assert discriminative_lrs(model, right, ratio=10).correct  # any head lr, ratio only
    same = torch.optim.AdamW([{"params": base, "lr": 1e-3}, {"params": head, "lr": 1e-3}])
    fb = discriminative_lrs(model, same, head_lr=1e-3, ratio=10)
    assert fb.message == "Group 0 (stage5, top) has lr 0.001, which is head lr / 1; expected head lr / 10 = 0.0001."
    one_group = torch.optim.AdamW(base + head, lr=1e-3)
    fb = discriminative_lrs(model, one_group, head_lr=1e-3, ratio=10)
    assert "Group 0 mixes the head (2 tensors) with backbone stages (stage5, top; 39 tensors)" in fb.message
    slow_head = torch.optim.AdamW([{"params": base, "lr": 1e-5}, {"params": head, "lr": 1e-4}])
    fb = discriminative_lrs(model, slow_head, head_lr=1e-3, ratio=10)
    assert "The head's group (group 1) has lr 0.0001; expected head_lr = 0.001." in fb.message
    frozen_in = torch.optim.AdamW(
        [{"params": [p for p in model.parameters() if p not in set(head)], "lr": 1e-4}, {"params": head, "lr": 1e-3}]
    )
    assert "frozen tensors" in discriminative_lrs(model, frozen_in, head_lr=1e-3).message
    # A warm-up scheduler changes lr; initial_lr is what the learner configured.
    warm = torch.optim.AdamW([{"params": base, "lr": 1e-4}, {"params": head, "lr": 1e-3}])
    torch.optim.lr_scheduler.LambdaLR(warm, lambda step: 0.1)
    assert warm.param_groups[0]["lr"] == pytest.approx(1e-5)
    assert discriminative_lrs(model, warm, head_lr=1e-3, ratio=10).correct
    _train_only(model, {"head"})
    fb = discriminative_lrs(model, torch.optim.AdamW(head, lr=1e-3), head_lr=1e-3)
    assert "No backbone parameter is trainable" in fb.message


# --------------------------------------------------------------------------- values and registry


def test_value_helpers():
    assert value_close(torch.tensor(0.25), 0.25).correct
    assert value_close(0.2501, 0.25, rel_tol=1e-3).correct
    assert value_close(0.26, 0.25, rel_tol=1e-3).message == "0.26 is too high."
    assert value_close([1.0, 2.0], [1.0, 2.0]).correct
    assert "the first at index (1,)" in value_close([1.0, 2.5], [1.0, 2.0]).message
    assert "Expected shape (2,), got (3,)" in value_close([1, 2, 3], [1, 2]).message
    assert value_close(float("nan"), 1.0).message == "The value is NaN."
    assert "is not a number" in value_close("abc", 1.0).message
    assert "is not a number" in value_close(True, 1.0).message
    assert value_equal(torch.Size([3, 224]), (3, 224)).correct
    assert value_equal(["ant", "bee"], ["ant", "bee"]).correct
    assert value_equal(["ant"], ["ant", "bee"]).message == "Expected 2 items, got 1."


def test_registry():
    assert {"frozen_except_head", "trainable_stages", "optimizer_covers_trainable", "discriminative_lrs",
            "bn_eval_in_frozen_stages", "new_head", "value_close"} <= set(CHECKERS)
    with pytest.raises(CourseError, match="Unknown checker 'frozen'"):
        get_checker("frozen")

    @register_checker(name="_test_always_right")
    def always(value):
        return value_equal(value, value)

    try:
        assert get_checker("_test_always_right") is always
        with pytest.raises(CourseError, match="already registered"):
            register_checker(lambda value: None, name="_test_always_right")
    finally:
        CHECKERS.pop("_test_always_right")


# --------------------------------------------------------------------------- through the notebook API


def test_check_code_through_exercises(model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TLCOURSE_BANKS", str(BANKS))
    progress = tmp_path / "p.json"
    ex = Exercises.load("example", learner="ana", headless=True, progress=progress)
    ex.check_code("q6", model=model)  # nothing frozen yet
    _train_only(model, {"head"})
    ex.check_code("q6", model=model)
    _train_only(model, {"stage5", "top", "head"})
    opt = torch.optim.AdamW(
        [{"params": _params(model, {"stage5", "top"}), "lr": 1e-4}, {"params": _params(model, {"head"}), "lr": 1e-3}]
    )
    ex.check_code("q7", model=model)
    ex.check_code("q8", model=model, optimizer=opt)
    out = capsys.readouterr().out
    assert "stage5 (27 tensors, 795,264 weights) is still trainable" in out
    entries = read_entries(progress)
    assert [(e["question"], e["correct"]) for e in entries] == [("q6", False), ("q6", True), ("q7", True), ("q8", True)]
    assert entries[0]["answer"] == {"model": "<torchvision.models.mobilenetv2.MobileNetV2>"}
    assert entries[3]["answer"]["optimizer"] == "<torch.optim.adamw.AdamW>"
    assert ex.score().correct == 3
