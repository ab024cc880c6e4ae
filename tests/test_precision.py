"""Mixed precision (tlcourse.precision): which format each setting gives on which device, bfloat16
training and extraction on a CPU, and the strided depthwise convolutions kept in float32.

bfloat16 is emulated on a CPU without bfloat16 units (slow, but the same numbers), so the tests
that train in it pretend the CPU has them: what they check is the course's plumbing, not speed.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tlcourse import precision
from tlcourse.errors import CourseError
from tlcourse.features import extract_features, extract_mirror_pairs
from tlcourse.models import create_model, freeze, split_at, stage_of_parameters
from tlcourse.train import evaluate, fit

CPU = torch.device("cpu")


@pytest.fixture
def bfloat16_cpu(monkeypatch):
    """This CPU counts as having bfloat16 units (where it has none, torch emulates them)."""
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)


@pytest.fixture(scope="module")
def mobilenet():
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    return model


def test_true_means_mixed_precision_on_cuda_only_and_false_means_float32():
    assert precision.autocast_dtype(CPU, True) is None
    assert precision.autocast_dtype(CPU, False) is None
    assert precision.describe("cpu", True) == "float32"
    assert isinstance(precision.autocast(CPU, True), type(precision.autocast(CPU, False)))


@pytest.mark.parametrize("bad", ["fp16", "float16", 1, None, "True"])
def test_an_unknown_amp_setting_is_refused_with_the_choices(bad):
    with pytest.raises(CourseError, match=r"amp must be True .*False .*'bfloat16'"):
        precision.autocast_dtype(CPU, bad)


def test_bfloat16_is_refused_on_a_cpu_that_would_only_emulate_it(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    with pytest.raises(CourseError, match="no bfloat16 units.*amp=True"):
        precision.autocast_dtype(CPU, "bfloat16")
    with pytest.raises(CourseError, match="no bfloat16 units"):
        precision.amp_for("bfloat16", "cpu")
    assert precision.amp_for("auto", "cpu") is True  # auto stays in float32 there
    with pytest.raises(CourseError, match="no bfloat16 units"):
        fit(nn.Linear(4, 2), [(torch.zeros(4), 0)], epochs=1, device="cpu", amp="bfloat16", progress=False)


def test_a_lessons_precision_setting_becomes_an_amp_argument(bfloat16_cpu):
    assert precision.amp_for("auto", "cpu") == "bfloat16"
    assert precision.amp_for("float32", "cpu") is False
    assert precision.amp_for("bfloat16", "cpu") == "bfloat16"
    assert precision.describe("cpu", "bfloat16") == "mixed precision (bfloat16 autocast)"
    with pytest.raises(CourseError, match="precision must be one of 'auto', 'float32', 'bfloat16', got 'half'"):
        precision.amp_for("half", "cpu")


def test_the_cpu_query_answers_without_raising():
    assert isinstance(precision.cpu_has_bfloat16(), bool)
    assert precision.native_bfloat16("cpu") == precision.cpu_has_bfloat16()


def test_strided_depthwise_convolutions_run_in_float32_inside_and_are_restored_after(mobilenet, bfloat16_cpu):
    model = copy.deepcopy(mobilenet).eval()
    strided_depthwise = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
                         and m.groups == m.in_channels > 1 and max(m.stride) > 1]
    assert len(strided_depthwise) == 4  # MobileNetV2's four downsampling blocks after the stem
    dtypes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: dtypes.__setitem__(n, o.dtype))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    x = torch.randn(2, 3, 64, 64)
    with precision.cpu_float32_where_slow(model, CPU, "bfloat16") as switched, precision.autocast(CPU, "bfloat16"):
        assert switched == 4
        out = model(x)
    assert {n for n, d in dtypes.items() if d == torch.float32} == set(strided_depthwise)
    assert {d for n, d in dtypes.items() if n not in strided_depthwise} == {torch.bfloat16}
    assert out.dtype == torch.bfloat16
    for h in hooks:
        h.remove()
    assert not any("forward" in vars(m) for m in model.modules())  # the instances are as they were
    assert set(model.state_dict()) == set(mobilenet.state_dict())
    with precision.cpu_float32_where_slow(model, CPU, True) as switched:
        assert switched == 0  # float32 on the CPU: nothing to switch


def test_fine_tuning_in_bfloat16_on_cached_activations_learns_and_keeps_float32_weights(
        mobilenet, small_plants, bfloat16_cpu):
    model = copy.deepcopy(mobilenet)
    acts = extract_mirror_pairs(model, small_plants, stage="stage4", device="cpu", progress=False, amp="bfloat16")
    _, top = split_at(model, "stage4")
    stage_of = stage_of_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad = stage_of[name] in ("stage5", "top", "head")
    history = fit(top, acts, acts.photo, epochs=4, lr=3e-3, device="cpu", amp="bfloat16", progress=False, seed=0)
    losses = [r["train_loss"] for r in history.records]
    assert losses[-1] < 0.6 * losses[0]
    assert history.records[-1]["val_acc"] > 0.8  # 90 leaves of 15 classes, seen in training
    assert all(p.dtype == torch.float32 for p in top.parameters())
    assert not any("forward" in vars(m) for m in top.modules())
    in_bf16, in_fp32 = (evaluate(top, acts.photo, device="cpu", amp=amp) for amp in ("bfloat16", False))
    assert (in_bf16["probs"] - in_fp32["probs"]).abs().max() < 0.05
    assert (in_bf16["preds"] == in_fp32["preds"]).float().mean() >= 0.95


def test_bfloat16_features_are_close_to_float32_ones_and_cached_apart(mobilenet, small_plants, bfloat16_cpu):
    fp32 = extract_features(mobilenet, small_plants, device="cpu", progress=False)
    bf16 = extract_features(mobilenet, small_plants, device="cpu", progress=False, amp="bfloat16")
    assert bf16.key != fp32.key and bf16.features.dtype == torch.float32
    assert extract_features(mobilenet, small_plants, device="cpu", progress=False, amp="bfloat16") is bf16
    assert not torch.equal(bf16.features, fp32.features)
    relative = (bf16.features - fp32.features).norm() / fp32.features.norm()
    assert relative < 0.05
    cosine = nn.functional.cosine_similarity(bf16.features, fp32.features)
    assert cosine.min() > 0.99
