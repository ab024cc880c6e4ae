"""Lesson 06's checker (``seed_spread``) and exercises: right answers pass, typical mistakes are named.

Code exercises are graded through the bank (as the notebook does) on a real MobileNetV2 and on a
real grid of linear probes on chest X-rays.
"""
from __future__ import annotations

import pandas as pd
import pytest
from stage_setups import train_from
from torch import nn

from tlcourse.errors import InvalidParameterError
from tlcourse.exercises.checkers.lesson06 import seed_spread

BANK = "06_decision_matrix"


@pytest.fixture()
def model(mobilenet) -> nn.Module:
    return mobilenet(2)


def test_choice_answers(ex):
    given = {"design_xray": "c", "design_traffic": "a", "design_defects": ["a", "b", "e"],
             "spread_overlap": "c", "why_partial_cheap": "a"}
    for qid, answer in given.items():
        assert ex.grade(qid, answer).correct, qid
    assert not ex.grade("design_defects", ["a", "b", "c"]).correct  # scratch on 100 defects is not sensible


def test_probe_setup(ex, model):
    assert ex.grade("probe_setup", model=train_from(model, "head")).correct
    fb = ex.grade("probe_setup", model=train_from(model, "stage5"))
    assert not fb.correct and "stage5" in fb.message
    fb = ex.grade("probe_setup", model=train_from(model, "stem"))
    assert not fb.correct and "stem" in fb.message


def test_partial_from_stage4(ex, model):
    assert ex.grade("partial_from_stage4", model=train_from(model, "stage4")).correct
    fb = ex.grade("partial_from_stage4", model=train_from(model, "stage5"))  # off by one stage
    assert not fb.correct and "stage4" in fb.message
    fb = ex.grade("partial_from_stage4", model=train_from(model, "stage3"))
    assert not fb.correct and "stage3" in fb.message


def test_partial_share(ex, model):
    train_from(model, "stage5")
    share = sum(p.numel() for p in model.parameters() if p.requires_grad) / sum(p.numel() for p in model.parameters())
    assert ex.grade("partial_share", value=share).correct
    assert not ex.grade("partial_share", value=1683906).correct  # a count, not a share
    assert not ex.grade("partial_share", value=795264 / 2226434).correct  # stage5 only, without top and head
    assert not ex.grade("partial_share", value=None).correct


def test_seed_summary(ex, probe_grid):
    runs, _ = probe_grid
    cells = ["dataset", "n_per_class", "strategy"]
    right = runs.groupby(cells)["acc"].agg(["mean", "std"])
    fb = ex.grade("seed_summary", summary=right, runs=runs)
    assert fb.correct, fb.message
    fb = ex.grade("seed_summary", summary=runs.groupby(cells)["acc"].agg(["mean", lambda v: v.std(ddof=0)])
                    .set_axis(["mean", "std"], axis=1), runs=runs)
    assert not fb.correct and "population" in fb.message
    fb = ex.grade("seed_summary", summary=runs.groupby(cells + ["seed"])["acc"].agg(["mean", "std"]), runs=runs)
    assert not fb.correct and "seed" in fb.message
    fb = ex.grade("seed_summary", summary=runs.groupby(["dataset", "strategy"])["acc"].agg(["mean", "std"]), runs=runs)
    assert not fb.correct and "merged" in fb.message
    shifted = runs.assign(balanced_acc=runs["acc"] * 0.9)  # the X-ray test set is balanced: make them differ
    fb = ex.grade("seed_summary", summary=shifted.groupby(cells)["balanced_acc"].agg(["mean", "std"]), runs=shifted)
    assert not fb.correct and "balanced_acc" in fb.message
    assert not ex.grade("seed_summary", summary=None, runs=runs).correct


def test_seed_spread_refuses_a_bad_runs_table():
    with pytest.raises(InvalidParameterError):
        seed_spread(pd.DataFrame(), pd.DataFrame({"acc": [0.5]}))


def _two_strategy_runs() -> pd.DataFrame:
    """Three seeds per strategy in three cells: a clear winner, an overlap, and a trap where the
    runner-up by mean is beaten but a third strategy's best seed is not."""
    rows = []
    cells = {
        ("pneumoniamnist", 10): {"linear_probe": [0.70, 0.72, 0.74], "stage_probe": [0.80, 0.82, 0.84]},
        ("pneumoniamnist", 500): {"linear_probe": [0.80, 0.84, 0.88], "partial": [0.82, 0.85, 0.86]},
        ("hymenoptera", 10): {"linear_probe": [0.80, 0.81, 0.82], "stage_probe": [0.70, 0.71, 0.72],
                              "partial": [0.55, 0.60, 0.83]},
    }
    for (dataset, n), strategies in cells.items():
        for strategy, accs in strategies.items():
            for seed, acc in enumerate(accs):
                rows.append({"dataset": dataset, "n_per_class": n, "strategy": strategy, "seed": seed, "acc": acc})
    return pd.DataFrame(rows)


def test_clear_winner(ex):
    runs = _two_strategy_runs()
    right = {("pneumoniamnist", 10): "stage_probe", ("pneumoniamnist", 500): None, ("hymenoptera", 10): None}
    fb = ex.grade("clear_winner", clear=right, runs=runs)
    assert fb.correct and "1 of 3" in fb.message
    by_mean = {("pneumoniamnist", 10): "stage_probe", ("pneumoniamnist", 500): "partial", ("hymenoptera", 10): "linear_probe"}
    fb = ex.grade("clear_winner", clear=by_mean, runs=runs)
    assert not fb.correct and "min with max" in fb.message
    fb = ex.grade("clear_winner", clear=dict.fromkeys(right), runs=runs)
    assert not fb.correct and "some do" in fb.message
    runner_up_only = {**right, ("hymenoptera", 10): "linear_probe"}  # beats stage_probe, not partial's 0.83
    fb = ex.grade("clear_winner", clear=runner_up_only, runs=runs)
    assert not fb.correct and "runner-up by mean only" in fb.message
    fb = ex.grade("clear_winner", clear={("pneumoniamnist", 10): "stage_probe"}, runs=runs)
    assert not fb.correct and "one per cell" in fb.message
    assert not ex.grade("clear_winner", clear=[("pneumoniamnist", 10)], runs=runs).correct
    with pytest.raises(InvalidParameterError, match="run_grid"):
        ex.grade("clear_winner", clear=right, runs=runs.drop(columns="seed"))


def test_earlier_stage_reason(ex):
    assert ex.grade("earlier_stage_reason", "a").correct
    assert not ex.grade("earlier_stage_reason", "b").correct  # stage4 is narrower (96) than the top (1,280)
