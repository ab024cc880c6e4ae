"""Lesson 09's checkers and code exercises: right answers pass, typical mistakes are named.

The checkers run on a real MobileNetV2 with a 15-way head (the model lesson 09 deploys) and
are also reached through the bank, as the exercise notebook reaches them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torch import nn

from tlcourse.errors import CourseError
from tlcourse.exercises.checkers.lesson09 import best_under_budget, inference_ready, int8_decision, parameter_count
from tlcourse.models import get_head, load_backbone

BANK = "09_choosing_a_model"


@pytest.fixture()
def model(mobilenet) -> nn.Module:
    return mobilenet(15)


# ------------------------------------------------------------------ parameter_count


def test_parameter_count_right(model, ex):
    value = sum(p.numel() for p in model.parameters())
    assert value == 2_243_087  # 2,223,872 backbone + 1280 x 15 + 15 head
    fb = ex.grade("param_count", value=value)
    assert fb.correct, fb.message
    assert "MB" in fb.message


def test_parameter_count_mistakes_are_named(model):
    def check(value):
        return parameter_count(value, "mobilenet_v2", 15)

    tensors = check(len(list(model.parameters())))
    assert not tensors.correct and "tensors" in tensors.message and "numel" in tensors.message
    imagenet = check(sum(p.numel() for p in load_backbone("mobilenet_v2", pretrained=False).parameters()))
    assert not imagenet.correct and "1000-way" in imagenet.message
    head_only = check(sum(p.numel() for p in get_head(model).parameters()))
    assert not head_only.correct and "head alone" in head_only.message
    state = check(sum(t.numel() for t in model.state_dict().values()))
    assert not state.correct and "buffers" in state.message
    other = check(12)
    assert not other.correct and "too low" in other.message
    not_a_number = check("2243087")
    assert not not_a_number.correct and "whole number" in not_a_number.message
    for not_a_count in (True, 2243087.5, float("inf")):
        fb = check(not_a_count)
        assert not fb.correct and fb.message == f"Expected a whole number of parameters, got {not_a_count!r}."


def test_parameter_count_accepts_numpy_and_whole_float_counts(model):
    # np.sum([p.numel() for p in model.parameters()]) gives an np.int64
    value = np.sum([p.numel() for p in model.parameters()])
    assert isinstance(value, np.integer)
    assert parameter_count(value, "mobilenet_v2", 15).correct
    assert parameter_count(float(value), "mobilenet_v2", 15).correct


def test_parameter_count_bank_typo_is_the_authors_error():
    with pytest.raises(CourseError, match="mobilenet_v3"):
        parameter_count(1, "mobilenet_v3", 15)


# ------------------------------------------------------------------ inference_ready


def test_inference_ready_after_eval(model, ex):
    model.train()
    model.eval()
    fb = ex.grade("eval_mode", model=model)
    assert fb.correct, fb.message


def test_inference_ready_names_training_mode(model):
    model.train()
    fb = inference_ready(model)
    assert not fb.correct
    assert "training mode" in fb.message and "model.eval()" in fb.message and "parentheses" in fb.message


def test_inference_ready_names_a_partial_eval(model):
    model.train()
    get_head(model).eval()
    model.classifier.eval()  # head and dropout in eval, the BatchNorms of the backbone still training
    fb = inference_ready(model)
    assert not fb.correct
    assert "BatchNorm2d" in fb.message and "whole model" in fb.message


def test_inference_ready_names_the_attribute_trap(model):
    model.train()
    model.training = False  # the flag alone does not reach the submodules
    fb = inference_ready(model)
    assert not fb.correct and "does not reach the submodules" in fb.message


def test_inference_ready_refuses_the_create_model_tuple(model):
    fb = inference_ready((model, None))
    assert not fb.correct and "tuple" in fb.message


# ------------------------------------------------------------------ best_under_budget

# A table as lesson 09 measures it (values recorded from one run on a 2-core CPU).
TABLE = pd.DataFrame(
    [
        {"backbone": "mobilenet_v2", "test_acc": 0.853, "latency_ms": 7.9},
        {"backbone": "efficientnet_lite0", "test_acc": 0.879, "latency_ms": 11.4},
        {"backbone": "resnet18", "test_acc": 0.902, "latency_ms": 19.6},
    ]
).set_index("backbone")


def test_best_under_budget_right(ex):
    fb = ex.grade("budget_pick", choice="efficientnet_lite0", table=TABLE, budget_ms=12.0)
    assert fb.correct, fb.message
    assert best_under_budget("resnet18", TABLE.reset_index().to_dict("records"), 25.0).correct  # a list of dicts works too


def test_best_under_budget_names_the_fastest_mistake():
    fb = best_under_budget("mobilenet_v2", TABLE, 12.0)
    assert not fb.correct
    assert "efficientnet_lite0 also does and is more accurate" in fb.message and "fastest" in fb.message


def test_best_under_budget_names_a_model_over_budget():
    fb = best_under_budget("resnet18", TABLE, 12.0)
    assert not fb.correct
    assert "over the 12 ms budget" in fb.message and "most accurate overall" in fb.message


@pytest.mark.parametrize("budget", [0, -5.0, float("nan"), float("inf"), True, "12"])
def test_best_under_budget_refuses_a_budget_that_is_not_a_positive_number(budget):
    fb = best_under_budget("mobilenet_v2", TABLE, budget)
    assert not fb.correct
    assert fb.message == f"budget_ms must be a positive number of milliseconds, got {budget!r}."


def test_best_under_budget_accepts_a_numpy_budget():
    assert best_under_budget("efficientnet_lite0", TABLE, np.float32(12.0)).correct


def test_best_under_budget_none_and_bad_names():
    assert not best_under_budget(None, TABLE, 12.0).correct
    typo = best_under_budget("mobilenet", TABLE, 12.0)
    assert not typo.correct and "not one of the candidates" in typo.message
    nothing_fits = best_under_budget(None, TABLE, 5.0)
    assert nothing_fits.correct, nothing_fits.message
    assert "the answer is None" in best_under_budget("mobilenet_v2", TABLE, 5.0).message


def test_best_under_budget_accepts_either_of_a_tie():
    tied = TABLE.copy()
    tied.loc["mobilenet_v2", "test_acc"] = tied.loc["efficientnet_lite0", "test_acc"]
    assert best_under_budget("mobilenet_v2", tied, 12.0).correct
    assert best_under_budget("efficientnet_lite0", tied, 12.0).correct


def test_best_under_budget_rejects_a_table_without_latency():
    fb = best_under_budget("mobilenet_v2", TABLE.drop(columns="latency_ms"), 12.0)
    assert not fb.correct and "latency_ms" in fb.message


# ------------------------------------------------------------------ the other questions


def test_bank_answers(ex):
    assert ex.grade("latency_kind", "a").correct
    assert not ex.grade("latency_kind", "b").correct
    assert ex.grade("timing_protocol", ["a", "b", "c", "d"]).correct
    assert not ex.grade("timing_protocol", ["a", "b", "c", "d", "e"]).correct
    assert ex.grade("size_estimate", 2_243_087 * 4 / 1e6).correct
    assert not ex.grade("size_estimate", 2_243_087 * 4 / 2**20 / 4).correct
    assert ex.grade("export_contents", ["a", "b", "c"]).correct
    assert ex.grade("quantisation", "b").correct
    assert ex.grade("server_pick", "b").correct


# ------------------------------------------------------------------ int8_decision


def test_int8_decision_right_both_ways(ex):
    fb = ex.grade("int8_verdict", ship="float32", fp32_acc=0.915, int8_acc=0.862, max_drop=0.01)
    assert fb.correct, fb.message
    assert "-5.3 points" not in fb.message and "+5.3 points" in fb.message
    assert int8_decision("int8", 0.915, 0.910, 0.01).correct
    assert int8_decision("int8", 0.90, 0.91, 0.0).correct  # int8 more accurate: nothing lost


def test_int8_decision_mistakes_are_named():
    wrong = int8_decision("int8", 0.915, 0.862, 0.01)
    assert not wrong.correct and "the answer is float32" in wrong.message
    # drop 0.009 <= 0.01, but 0.009 / 0.5 = 0.018 > 0.01: the relative drop would say float32
    relative = int8_decision("float32", 0.50, 0.491, 0.01)
    assert not relative.correct and "not a fraction of fp32_acc" in relative.message
    assert int8_decision("int8", 0.50, 0.491, 0.01).correct
    refuse_better = int8_decision("float32", 0.90, 0.91, 0.0)
    assert not refuse_better.correct and "more accurate" in refuse_better.message
    for bad in ("yes", None, 1):
        assert not int8_decision(bad, 0.9, 0.89, 0.01).correct
    assert "fraction" in int8_decision("int8", 91.5, 86.2, 1).message  # percentages instead of fractions
