"""The learning-rate range test on real leaf features and a real MobileNetV2: the curve falls
then rises, and the borrowed model and optimizer come back exactly as they were."""
from __future__ import annotations

import copy

import pytest
import torch

from tlcourse.errors import InvalidParameterError
from tlcourse.models import keep_frozen_bn_in_eval, split_at, unfreeze_top
from tlcourse.train import LRSweep, lr_range_test


def test_sweep_on_real_features_falls_then_rises(features, new_head):
    head = new_head(0)
    sweep = lr_range_test(head, features, start_lr=1e-6, end_lr=1e3, steps=150, batch_size=16,
                          device="cpu", progress=False)
    assert isinstance(sweep, LRSweep) and 10 < len(sweep) <= 150
    assert sweep.lrs == sorted(sweep.lrs) and sweep.lrs[0] == pytest.approx(1e-6)
    assert sweep.stopped, "a rate of 1000 must blow the loss up before the end"
    assert min(sweep.smoothed) < 0.7 * sweep.smoothed[0]  # the loss did fall
    assert 1e-4 < sweep.lr_at_min < sweep.lrs[-1]
    assert sweep.suggestion() == pytest.approx(sweep.lr_at_min / 10)
    assert sweep.loss_at(sweep.lr_at_min) == pytest.approx(min(sweep.smoothed))
    assert list(sweep.to_frame().columns) == ["lr", "loss", "smoothed"]
    assert "lowest smoothed loss" in repr(sweep)


def test_sweep_gives_back_weights_buffers_modes_and_optimizer(frozen_model, small_plants):
    model = copy.deepcopy(frozen_model)
    unfreeze_top(model, 1)
    model.train()
    keep_frozen_bn_in_eval(model)  # mixed modes: the sweep must not flatten them
    modes = {n: m.training for n, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    head = [p for n, p in model.named_parameters() if n.startswith("classifier")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("classifier")]
    optimizer = torch.optim.AdamW([{"params": rest, "lr": 1e-4}, {"params": head, "lr": 1e-3}])
    opt_state = copy.deepcopy(optimizer.state_dict())
    sweep = lr_range_test(model, small_plants, optimizer, steps=12, batch_size=8, end_lr=1e-1,
                          device="cpu", progress=False)
    assert sweep.ratios == pytest.approx([0.1, 1.0])  # the groups kept their ratio during the sweep
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-3]
    assert optimizer.state_dict()["state"] == opt_state["state"] == {}


def test_sweep_on_cached_activations_trains_only_the_top(frozen_model, small_plants):
    from tlcourse.features import extract_features

    model = copy.deepcopy(frozen_model)
    unfreeze_top(model, 1)
    bottom, top = split_at(model, "stage5")
    acts = extract_features(model, small_plants, stage="stage5", progress=False, cache=False)
    sweep = lr_range_test(top, acts, steps=10, batch_size=16, device="cpu", progress=False)
    assert len(sweep) == 10 and not sweep.stopped


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"start_lr": 0}, "start_lr must be a positive number"),
        ({"start_lr": 1e-2, "end_lr": 1e-3}, "must be larger than start_lr"),
        ({"steps": 3}, "steps must be an integer >= 10"),
        ({"steps": True}, "steps must be an integer"),
        ({"smoothing": 1.5}, "smoothing must be between 0 and 1"),
        ({"stop_factor": 1}, "stop_factor must be above 1"),
        ({"end_lr": float("nan")}, "end_lr must be a positive number"),
    ],
)
def test_bad_ranges_are_refused(features, new_head, kwargs, words):
    with pytest.raises(InvalidParameterError, match=words):
        lr_range_test(new_head(0), features, progress=False, **kwargs)


def test_a_frozen_model_is_refused(features, new_head):
    head = new_head(0)
    head.requires_grad_(False)
    with pytest.raises(InvalidParameterError, match="no trainable parameters"):
        lr_range_test(head, features, progress=False)


def test_loss_at_outside_the_sweep_is_refused(features, new_head):
    sweep = lr_range_test(new_head(0), features, steps=20, end_lr=1e-2, progress=False)
    with pytest.raises(InvalidParameterError, match="outside the swept range"):
        sweep.loss_at(1.0)
