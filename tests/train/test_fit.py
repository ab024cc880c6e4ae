"""fit: determinism, early stopping, KeyboardInterrupt, frozen BatchNorm, and its guard rails."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.features import FeatureSet
from tlcourse.models import create_model, get_head, snapshot
from tlcourse.train import evaluate, fit


def _numbers(history) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


def test_same_seed_same_numbers(features, new_head):
    h1 = fit(new_head(), features, features, epochs=3, seed=5, progress=False)
    h2 = fit(new_head(), features, features, epochs=3, seed=5, progress=False)
    h3 = fit(new_head(), features, features, epochs=3, seed=6, progress=False)
    assert _numbers(h1) == _numbers(h2)
    assert _numbers(h1) != _numbers(h3)
    assert h1.final["train_acc"] > 0.5  # real ImageNet features separate the leaves


def test_early_stopping_restores_the_best_epoch(features, new_head):
    # Validation labels that contradict the training labels: the better the fit, the worse
    # the validation loss, so it is best early and early stopping must trigger.
    wrong = FeatureSet(features.features, (features.labels + 7) % 15, features.classes)
    head = new_head()
    history = fit(head, features, wrong, epochs=20, lr=1e-2, patience=2, seed=0, progress=False)
    assert history.stopped_early and len(history) < 20
    assert history.best_epoch == min(history.records, key=lambda r: r["val_loss"])["epoch"]
    assert evaluate(head, wrong, device="cpu")["loss"] == pytest.approx(history.best["val_loss"], rel=1e-5)


def test_keyboard_interrupt_returns_the_history_so_far(features, new_head):
    def stop_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted after 2 epoch"):
        history = fit(new_head(), features, features, epochs=5, progress=False, on_epoch_end=stop_after_two)
    assert history.interrupted and len(history) == 2


def test_frozen_backbone_and_its_batchnorm_do_not_move(frozen_model, small_plants):
    before = snapshot(frozen_model)
    fit(frozen_model, small_plants, epochs=1, batch_size=16, progress=False)
    after = snapshot(frozen_model)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and all(k.startswith("classifier.1") for k in moved)


def test_guard_rails(small_plants, features, new_head):
    model, _ = create_model("mobilenet_v2", 15)
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(CourseError, match="no trainable parameters"):
        fit(model, small_plants, epochs=1, progress=False)
    for p in get_head(model).parameters():
        p.requires_grad = True
    with pytest.raises(CourseError, match="raw uint8 images"):
        fit(model, small_plants.with_transform(None), epochs=1, progress=False)
    with pytest.raises(InvalidParameterError, match="epochs"):
        fit(model, small_plants, epochs=0)
    with pytest.raises(InvalidParameterError, match="lr"):
        fit(model, small_plants, lr=-1.0)
    with pytest.raises(CourseError, match="too high"):
        fit(new_head(), features, epochs=2, lr=1e30, progress=False)


def test_empty_training_data_is_a_clear_error(features, new_head, tmp_path):
    """An empty training set (a filter that matched nothing) used to end in torch's own ValueError."""
    empty = FeatureSet(features.features[:0], features.labels[:0], features.classes)
    head = new_head()
    weights = {k: v.clone() for k, v in head.state_dict().items()}
    ckpt = tmp_path / "run.pt"
    with pytest.raises(CourseError) as info:
        fit(head, empty, features, epochs=2, progress=False, checkpoint_path=ckpt)
    assert "nothing to train on: train_data is empty (0 images)" in str(info.value)
    assert not ckpt.exists() and list(tmp_path.iterdir()) == []  # no checkpoint of a run that never ran
    assert all(torch.equal(weights[k], v) for k, v in head.state_dict().items())


def test_optimizer_built_before_unfreezing_is_reported(features, new_head):
    head = new_head()
    extra = nn.Sequential(head)
    optimizer = torch.optim.AdamW([head.bias], lr=1e-3)  # weight forgotten
    with pytest.warns(UserWarning, match="not in the optimizer") as record:
        fit(extra, features, epochs=1, optimizer=optimizer, progress=False)
    assert record[0].filename == __file__  # the warning points at the caller's fit(...) line
