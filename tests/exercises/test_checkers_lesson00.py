"""Lesson 00's checker (which epoch fit restored) and exercises, graded through the bank.

The history is a real one: a linear head trained by fit on the frozen features of real leaves.
"""
from __future__ import annotations

import pytest

from tlcourse.exercises.checkers.lesson00 import restored_epoch
from tlcourse.train import History

BANK = "00_golden_rule"


def _history(val_losses, val_accs) -> History:
    records = [{"epoch": e, "train_loss": 1.0, "val_loss": v, "val_acc": a}
               for e, (v, a) in enumerate(zip(val_losses, val_accs), start=1)]
    best = min(records, key=lambda r: r["val_loss"])["epoch"]
    return History(records=records, best_epoch=best)


@pytest.fixture(scope="module")
def fitted_history(small_plants):
    from tlcourse.features import extract_features, train_linear_head
    from tlcourse.models import create_model, freeze

    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    feats = extract_features(model, small_plants, progress=False)
    _, history = train_linear_head(feats, feats, epochs=4, lr=1e-2, seed=0)
    return history


def test_restored_epoch_right_on_a_real_run(ex, fitted_history):
    fb = ex.grade("restored", epoch=fitted_history.best_epoch, history=fitted_history)
    assert fb.correct, fb.message


def test_restored_epoch_names_accuracy_and_last_epoch():
    # the highest accuracy (epoch 4) and the last epoch (5) both differ from the lowest loss (3)
    h = _history([1.0, 0.8, 0.6, 0.7, 0.9], [0.5, 0.6, 0.7, 0.75, 0.7])
    assert restored_epoch(3, h).correct
    acc = restored_epoch(4, h)
    assert not acc.correct and "highest validation accuracy" in acc.message
    last = restored_epoch(5, h)
    assert not last.correct and "last epoch" in last.message
    assert "no epoch 9" in restored_epoch(9, h).message
    assert not restored_epoch(2, h).correct
    assert not restored_epoch(None, h).correct
    assert "Pass the History" in restored_epoch(3, {"val_loss": 1}).message
    no_val = History(records=[{"epoch": 1, "train_loss": 1.0}])
    assert "no validation loss" in restored_epoch(1, no_val).message


def test_freeze_all_but_head(ex, mobilenet):
    from tlcourse.models import get_head

    model = mobilenet(15)
    assert not ex.grade("freeze_all_but_head", model=model).correct  # nothing frozen yet
    for p in model.parameters():
        p.requires_grad = False
    assert not ex.grade("freeze_all_but_head", model=model).correct  # the head frozen too
    for p in get_head(model).parameters():
        p.requires_grad = True
    assert ex.grade("freeze_all_but_head", model=model).correct


@pytest.mark.parametrize("qid, right, wrong", [
    ("definition", "b", "c"),
    ("why_features", "c", "a"),
    ("curves_scratch", "b", "a"),
    ("curves_speed", "b", "d"),
    ("lite0_norm", "b", "a"),
])
def test_choice_questions(ex, qid, right, wrong):
    assert ex.grade(qid, right).correct
    assert not ex.grade(qid, wrong).correct
