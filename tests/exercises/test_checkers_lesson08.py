"""Lesson 08's checkers (class weights, balanced accuracy, a threshold for a recall target) and exercises.

Right answers pass and typical mistakes are named, on real linear-probe predictions for chest
X-rays (PneumoniaMNIST at 32 px, a few images per class).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tlcourse.errors import InvalidParameterError
from tlcourse.exercises.checkers.lesson08 import balanced_accuracy_value, class_weighted_loss, threshold_for_recall

BANK = "08_different_domains"


def test_choice_and_numeric_answers(ex):
    given = {"licence_elpv": "b", "screening_metric": "b", "lazy_accuracy": 0.69, "lower_threshold": "a",
             "auc_meaning": "a", "weighted_single_image": "b"}
    for qid, answer in given.items():
        assert ex.grade(qid, answer).correct, qid
    fb = ex.grade("lazy_accuracy", 0.31)
    assert not fb.correct and "too low" in fb.message


def test_weighted_loss(ex):
    counts = torch.tensor([138.0, 62.0])
    right = nn.CrossEntropyLoss(weight=counts.sum() / (2 * counts))
    assert ex.grade("weighted_loss", criterion=right, counts=counts).correct
    assert ex.grade("weighted_loss", criterion=nn.CrossEntropyLoss(weight=1 / counts), counts=counts).correct
    fb = ex.grade("weighted_loss", criterion=nn.CrossEntropyLoss(), counts=counts)
    assert not fb.correct and "no class weights" in fb.message
    fb = ex.grade("weighted_loss", criterion=nn.CrossEntropyLoss(weight=counts / counts.sum()), counts=counts)
    assert not fb.correct and "proportional to the counts" in fb.message
    fb = ex.grade("weighted_loss", criterion=nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0])), counts=counts)
    assert not fb.correct and "3 weight(s) for 2 classes" in fb.message
    fb = ex.grade("weighted_loss", criterion=nn.NLLLoss(weight=1 / counts), counts=counts)
    assert not fb.correct and "NLLLoss" in fb.message
    with pytest.raises(InvalidParameterError):
        class_weighted_loss(right, counts=[[1, 2]])


def test_balanced_accuracy(ex, probe_grid):
    _, runs = probe_grid
    run = runs[0]
    labels, preds = run.labels, run.preds
    right = sum(float((preds[labels == c] == c).float().mean()) for c in (0, 1)) / 2
    assert ex.grade("balanced_accuracy", value=right, labels=labels, preds=preds).correct
    # Imbalanced labels make plain accuracy differ from balanced accuracy: drop some normal X-rays.
    keep = torch.cat([torch.nonzero(labels == 0).flatten()[:10], torch.nonzero(labels == 1).flatten()])
    y, p = labels[keep], torch.zeros(len(keep), dtype=torch.long)  # "always normal"
    fb = ex.grade("balanced_accuracy", value=float((p == y).float().mean()), labels=y, preds=p)
    assert not fb.correct and "plain accuracy" in fb.message
    fb = balanced_accuracy_value(1.0, y, p)  # recall of the class it always predicts
    assert not fb.correct and "recall of class 0" in fb.message
    assert not ex.grade("balanced_accuracy", value=None, labels=labels, preds=preds).correct


def test_recall_threshold(ex, probe_grid):
    _, runs = probe_grid
    run = runs[-1]
    scores, labels = run.probs[:, 1], run.labels
    best = next(t for t in sorted(set(scores.tolist()), reverse=True)
                if (scores[labels == 1] >= t).float().mean() >= 0.9)
    fb = ex.grade("recall_threshold", threshold=best, scores=scores, labels=labels)
    assert fb.correct, fb.message
    fb = ex.grade("recall_threshold", threshold=0.0, scores=scores, labels=labels)  # flags everything
    assert not fb.correct and "lower than it needs to be" in fb.message
    fb = ex.grade("recall_threshold", threshold=float(scores.max()) + 1e-3, scores=scores, labels=labels)
    assert not fb.correct and "below the target" in fb.message
    with pytest.raises(InvalidParameterError):
        threshold_for_recall(0.5, scores, labels, target=1.5)
    with pytest.raises(InvalidParameterError, match="got True"):
        threshold_for_recall(0.5, scores, labels, target=True)
    assert threshold_for_recall(best, scores, labels, target=np.float32(0.9)).correct


@pytest.mark.parametrize(
    "labels, preds, words",
    [
        ([0, 1, 1], [0, 1], "labels (3) and preds (2) must have the same length"),
        ([[0, 1]], [0, 1], "labels must be one non-empty row of numbers"),
        (["a", "b"], [0, 1], "labels must be a list, array or tensor of numbers"),
    ],
    ids=["lengths_differ", "not_1d", "not_numbers"],
)
def test_metric_checkers_name_malformed_inputs(labels, preds, words):
    fb = balanced_accuracy_value(0.5, labels, preds)
    assert not fb.correct and words in fb.message, fb.message
    fb = threshold_for_recall(0.5, preds, labels, target=0.9)  # the same parsing, with scores first
    assert not fb.correct


def test_calibration_choices(ex):
    assert ex.grade("temperature_keeps_accuracy", "a").correct
    assert not ex.grade("temperature_keeps_accuracy", "b").correct
    assert ex.grade("calibrated_threshold", "a").correct
    assert not ex.grade("calibrated_threshold", "c").correct


def test_ece_by_hand(ex, probe_grid):
    from tlcourse.calibration import expected_calibration_error, reliability_bins

    _, runs = probe_grid
    run = runs[0]
    right = expected_calibration_error(run.probs, run.labels, 10)
    assert ex.grade("ece_by_hand", value=right, probs=run.probs, labels=run.labels).correct
    bins = reliability_bins(run.probs, run.labels, 10)
    used = bins[bins["count"] > 0]
    gaps = (used["accuracy"] - used["confidence"]).abs()
    if len(used) > 1 and not np.isclose(gaps.mean(), right):
        fb = ex.grade("ece_by_hand", value=float(gaps.mean()), probs=run.probs, labels=run.labels)
        assert not fb.correct and "equal weights" in fb.message
    # a hand-made case where every mistake gives a different number
    p = torch.tensor([0.95, 0.95, 0.95, 0.95, 0.35, 0.35, 0.15, 0.45, 0.55], dtype=torch.float64)
    probs, labels = torch.stack([1 - p, p], 1), torch.tensor([1, 1, 1, 0, 0, 1, 1, 1, 1])
    fb = ex.grade("ece_by_hand", value=float(gaps.max()) + 1, probs=probs, labels=labels)
    assert not fb.correct
    b = reliability_bins(probs, labels, 10)
    b = b[b["count"] > 0]
    g = (b["accuracy"] - b["confidence"]).abs()
    fb = ex.grade("ece_by_hand", value=float(g.max()), probs=probs, labels=labels)
    assert not fb.correct and "largest gap" in fb.message
    from tlcourse.exercises.checkers.lesson08 import _positive_class_ece

    fb = ex.grade("ece_by_hand", value=_positive_class_ece(probs, labels, 10), probs=probs, labels=labels)
    assert not fb.correct and "predicted" in fb.message
    assert not ex.grade("ece_by_hand", value="0.1", probs=probs, labels=labels).correct


def test_temperature_on_validation(ex, probe_grid):
    from tlcourse.calibration import fit_temperature, logits_from_probs

    _, runs = probe_grid
    val, test = runs[3], runs[4]  # two real probes' predictions: one plays validation, one test
    args = dict(val_probs=val.probs, val_labels=val.labels, test_probs=test.probs, test_labels=test.labels)
    right = fit_temperature(logits_from_probs(val.probs), val.labels)
    on_test = fit_temperature(logits_from_probs(test.probs), test.labels)
    assert abs(right - on_test) / right > 0.05  # the two fits differ, so the mistake can be named
    assert ex.grade("temperature_on_validation", temperature=right * 1.01, **args).correct
    fb = ex.grade("temperature_on_validation", temperature=on_test, **args)
    assert not fb.correct and "test images" in fb.message
    fb = ex.grade("temperature_on_validation", temperature=1.0, **args)
    assert not fb.correct and "T = 1" in fb.message
    fb = ex.grade("temperature_on_validation", temperature=1 / right, **args)
    assert not fb.correct and "1 / T" in fb.message
    assert not ex.grade("temperature_on_validation", temperature=-2.0, **args).correct
