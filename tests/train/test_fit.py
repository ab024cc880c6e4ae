"""The fit loop: determinism, early stopping, checkpoints, and its guard rails."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.features import FeatureSet, extract_features
from tlcourse.models import create_model, freeze, get_head, snapshot
from tlcourse.train import History, evaluate, fit


@pytest.fixture(scope="module")
def frozen_model():
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    return model


@pytest.fixture(scope="module")
def features(frozen_model, small_plants):
    return extract_features(frozen_model, small_plants, progress=False)


def _head(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(1280, 15)


def test_same_seed_same_numbers(features):
    h1 = fit(_head(), features, features, epochs=3, seed=5, progress=False)
    h2 = fit(_head(), features, features, epochs=3, seed=5, progress=False)
    h3 = fit(_head(), features, features, epochs=3, seed=6, progress=False)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h.records]  # noqa: E731
    assert strip(h1) == strip(h2)
    assert strip(h1) != strip(h3)
    assert h1.final["train_acc"] > 0.5  # real ImageNet features separate the leaves


def test_early_stopping_restores_the_best_epoch(features):
    # Validation labels that contradict the training labels: the better the fit, the worse
    # the validation loss, so it is best early and early stopping must trigger.
    wrong = FeatureSet(features.features, (features.labels + 7) % 15, features.classes)
    head = _head()
    history = fit(head, features, wrong, epochs=20, lr=1e-2, patience=2, seed=0, progress=False)
    assert history.stopped_early and len(history) < 20
    assert history.best_epoch == min(history.records, key=lambda r: r["val_loss"])["epoch"]
    assert evaluate(head, wrong, device="cpu")["loss"] == pytest.approx(history.best["val_loss"], rel=1e-5)


def test_checkpoint_and_resume_match_an_uninterrupted_run(features, tmp_path):
    ckpt = tmp_path / "run.pt"
    straight = fit(_head(), features, features, epochs=4, seed=1, progress=False)
    head = _head()
    fit(head, features, features, epochs=2, seed=1, progress=False, checkpoint_path=ckpt)
    assert ckpt.is_file() and not list(tmp_path.glob("*.part"))
    resumed_head = _head(99)  # different start: everything must come from the checkpoint
    optimizer = torch.optim.AdamW(resumed_head.parameters(), lr=1e-3)
    resumed = fit(resumed_head, features, features, epochs=4, seed=1, progress=False,
                  optimizer=optimizer, checkpoint_path=ckpt, resume=True)
    assert [r["epoch"] for r in resumed.records] == [1, 2, 3, 4]
    for a, b in zip(straight.records, resumed.records):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_acc"] == b["val_acc"]


def test_keyboard_interrupt_returns_the_history_so_far(features):
    def stop_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted after 2 epoch"):
        history = fit(_head(), features, features, epochs=5, progress=False, on_epoch_end=stop_after_two)
    assert history.interrupted and len(history) == 2


def test_frozen_backbone_and_its_batchnorm_do_not_move(frozen_model, small_plants):
    before = snapshot(frozen_model)
    fit(frozen_model, small_plants, epochs=1, batch_size=16, progress=False)
    after = snapshot(frozen_model)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and all(k.startswith("classifier.1") for k in moved)


def test_guard_rails(small_plants, features):
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
        fit(_head(), features, epochs=2, lr=1e30, progress=False)


def test_optimizer_built_before_unfreezing_is_reported(features):
    head = _head()
    extra = nn.Sequential(head)
    optimizer = torch.optim.AdamW([head.bias], lr=1e-3)  # weight forgotten
    with pytest.warns(UserWarning, match="not in the optimizer"):
        fit(extra, features, epochs=1, optimizer=optimizer, progress=False)


def test_history_summary_and_frame(features):
    h = fit(_head(), features, features, epochs=2, progress=False, label="demo")
    assert isinstance(h, History) and "best epoch" in repr(h)
    frame = h.to_frame()
    assert list(frame.index) == [1, 2] and {"train_loss", "val_acc", "lr"} <= set(frame.columns)
