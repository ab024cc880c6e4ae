"""Exercises 06 (decision matrix) and 08 (different domains): right answers pass, typical mistakes are named.

Code exercises are graded through the banks (as the notebooks do) on a real MobileNetV2 and on real
linear-probe predictions for chest X-rays (PneumoniaMNIST at 32 px, a few images per class).
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tlcourse import experiments
from tlcourse.errors import InvalidParameterError
from tlcourse.exercises import Exercises
from tlcourse.exercises.checkers.lesson06 import seed_spread
from tlcourse.exercises.checkers.lesson08 import balanced_accuracy_value, class_weighted_loss, threshold_for_recall
from tlcourse.models import create_model, stage_names, stage_of_parameters


@pytest.fixture()
def ex06(tmp_path) -> Exercises:
    return Exercises.load("06_decision_matrix", learner="test", headless=True, progress=tmp_path / "p.json")


@pytest.fixture()
def ex08(tmp_path) -> Exercises:
    return Exercises.load("08_different_domains", learner="test", headless=True, progress=tmp_path / "p.json")


@pytest.fixture(scope="module")
def pristine() -> nn.Module:
    model, _ = create_model("mobilenet_v2", 2)
    return model


def _train_from(model: nn.Module, first: str) -> nn.Module:
    model = copy.deepcopy(model)
    order, stage_of = stage_names(model), stage_of_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad = order.index(stage_of[name]) >= order.index(first)
    return model


@pytest.fixture(scope="module")
def probe_grid():
    """Real linear probes on chest X-rays: 2 sizes x 3 seeds, with their test predictions."""
    budget = experiments.Budget(image_size=32, test_images=60, device="cpu")
    return experiments.run_grid(["pneumoniamnist"], [2, 6], ["linear_probe"], [0, 1, 2], budget,
                                progress=False, keep_runs=True)


# --------------------------------------------------------------------------- choice / numeric answers


def test_solution_answers_are_right(ex06, ex08):
    for ex, given in (
        (ex06, {"design_xray": "c", "design_traffic": "a", "design_defects": ["a", "b", "e"],
                "spread_overlap": "c", "why_partial_cheap": "a"}),
        (ex08, {"licence_elpv": "b", "screening_metric": "b", "lazy_accuracy": 0.69, "lower_threshold": "a",
                "auc_meaning": "a", "weighted_single_image": "b"}),
    ):
        for qid, answer in given.items():
            assert ex.grade(qid, answer).correct, qid
    assert not ex06.grade("design_defects", ["a", "b", "c"]).correct  # scratch on 100 defects is not sensible
    fb = ex08.grade("lazy_accuracy", 0.31)
    assert not fb.correct and "too low" in fb.message


# --------------------------------------------------------------------------- lesson 06 code


def test_probe_setup(ex06, pristine):
    assert ex06.grade("probe_setup", model=_train_from(pristine, "head")).correct
    fb = ex06.grade("probe_setup", model=_train_from(pristine, "stage5"))
    assert not fb.correct and "stage5" in fb.message
    fb = ex06.grade("probe_setup", model=_train_from(pristine, "stem"))
    assert not fb.correct and "stem" in fb.message


def test_partial_from_stage4(ex06, pristine):
    assert ex06.grade("partial_from_stage4", model=_train_from(pristine, "stage4")).correct
    fb = ex06.grade("partial_from_stage4", model=_train_from(pristine, "stage5"))  # off by one stage
    assert not fb.correct and "stage4" in fb.message
    fb = ex06.grade("partial_from_stage4", model=_train_from(pristine, "stage3"))
    assert not fb.correct and "stage3" in fb.message


def test_partial_share(ex06, pristine):
    model = _train_from(pristine, "stage5")
    share = sum(p.numel() for p in model.parameters() if p.requires_grad) / sum(p.numel() for p in model.parameters())
    assert ex06.grade("partial_share", value=share).correct
    assert not ex06.grade("partial_share", value=1683906).correct  # a count, not a share
    assert not ex06.grade("partial_share", value=795264 / 2226434).correct  # stage5 only, without top and head
    assert not ex06.grade("partial_share", value=None).correct


def test_seed_summary(ex06, probe_grid):
    runs, _ = probe_grid
    cells = ["dataset", "n_per_class", "strategy"]
    right = runs.groupby(cells)["acc"].agg(["mean", "std"])
    fb = ex06.grade("seed_summary", summary=right, runs=runs)
    assert fb.correct, fb.message
    fb = ex06.grade("seed_summary", summary=runs.groupby(cells)["acc"].agg(["mean", lambda v: v.std(ddof=0)])
                    .set_axis(["mean", "std"], axis=1), runs=runs)
    assert not fb.correct and "population" in fb.message
    fb = ex06.grade("seed_summary", summary=runs.groupby(cells + ["seed"])["acc"].agg(["mean", "std"]), runs=runs)
    assert not fb.correct and "seed" in fb.message
    fb = ex06.grade("seed_summary", summary=runs.groupby(["dataset", "strategy"])["acc"].agg(["mean", "std"]), runs=runs)
    assert not fb.correct and "merged" in fb.message
    shifted = runs.assign(balanced_acc=runs["acc"] * 0.9)  # the X-ray test set is balanced: make them differ
    fb = ex06.grade("seed_summary", summary=shifted.groupby(cells)["balanced_acc"].agg(["mean", "std"]), runs=shifted)
    assert not fb.correct and "balanced_acc" in fb.message
    assert not ex06.grade("seed_summary", summary=None, runs=runs).correct


# --------------------------------------------------------------------------- lesson 08 code


def test_weighted_loss(ex08):
    counts = torch.tensor([138.0, 62.0])
    right = nn.CrossEntropyLoss(weight=counts.sum() / (2 * counts))
    assert ex08.grade("weighted_loss", criterion=right, counts=counts).correct
    assert ex08.grade("weighted_loss", criterion=nn.CrossEntropyLoss(weight=1 / counts), counts=counts).correct
    fb = ex08.grade("weighted_loss", criterion=nn.CrossEntropyLoss(), counts=counts)
    assert not fb.correct and "no class weights" in fb.message
    fb = ex08.grade("weighted_loss", criterion=nn.CrossEntropyLoss(weight=counts / counts.sum()), counts=counts)
    assert not fb.correct and "proportional to the counts" in fb.message
    fb = ex08.grade("weighted_loss", criterion=nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0])), counts=counts)
    assert not fb.correct and "3 weight(s) for 2 classes" in fb.message
    fb = ex08.grade("weighted_loss", criterion=nn.NLLLoss(weight=1 / counts), counts=counts)
    assert not fb.correct and "NLLLoss" in fb.message
    with pytest.raises(InvalidParameterError):
        class_weighted_loss(right, counts=[[1, 2]])


def test_balanced_accuracy(ex08, probe_grid):
    _, runs = probe_grid
    run = runs[0]
    labels, preds = run.labels, run.preds
    right = sum(float((preds[labels == c] == c).float().mean()) for c in (0, 1)) / 2
    assert ex08.grade("balanced_accuracy", value=right, labels=labels, preds=preds).correct
    # Imbalanced labels make plain accuracy differ from balanced accuracy: drop some normal X-rays.
    keep = torch.cat([torch.nonzero(labels == 0).flatten()[:10], torch.nonzero(labels == 1).flatten()])
    y, p = labels[keep], torch.zeros(len(keep), dtype=torch.long)  # "always normal"
    fb = ex08.grade("balanced_accuracy", value=float((p == y).float().mean()), labels=y, preds=p)
    assert not fb.correct and "plain accuracy" in fb.message
    fb = balanced_accuracy_value(1.0, y, p)  # recall of the class it always predicts
    assert not fb.correct and "recall of class 0" in fb.message
    assert not ex08.grade("balanced_accuracy", value=None, labels=labels, preds=preds).correct


def test_recall_threshold(ex08, probe_grid):
    _, runs = probe_grid
    run = runs[-1]
    scores, labels = run.probs[:, 1], run.labels
    best = next(t for t in sorted(set(scores.tolist()), reverse=True)
                if (scores[labels == 1] >= t).float().mean() >= 0.9)
    fb = ex08.grade("recall_threshold", threshold=best, scores=scores, labels=labels)
    assert fb.correct, fb.message
    fb = ex08.grade("recall_threshold", threshold=0.0, scores=scores, labels=labels)  # flags everything
    assert not fb.correct and "lower than it needs to be" in fb.message
    fb = ex08.grade("recall_threshold", threshold=float(scores.max()) + 1e-3, scores=scores, labels=labels)
    assert not fb.correct and "below the target" in fb.message
    with pytest.raises(InvalidParameterError):
        threshold_for_recall(0.5, scores, labels, target=1.5)


def test_seed_spread_refuses_a_bad_runs_table():
    import pandas as pd

    with pytest.raises(InvalidParameterError):
        seed_spread(pd.DataFrame(), pd.DataFrame({"acc": [0.5]}))
