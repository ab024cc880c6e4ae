"""The generic checks (``value_close``, ``value_equal``) and the number parsing the checkers share."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tlcourse.exercises.checkers.common import Feedback, as_float_array, number, value_close, value_equal


def test_value_close():
    assert value_close(torch.tensor(0.25), 0.25).correct
    assert value_close(0.2501, 0.25, rel_tol=1e-3).correct
    assert value_close(0.26, 0.25, rel_tol=1e-3).message == "0.26 is too high."
    assert value_close([1.0, 2.0], [1.0, 2.0]).correct
    assert "the first at index (1,)" in value_close([1.0, 2.5], [1.0, 2.0]).message
    assert "Expected shape (2,), got (3,)" in value_close([1, 2, 3], [1, 2]).message
    assert value_close(float("nan"), 1.0).message == "The value is NaN."
    assert "is not a number" in value_close("abc", 1.0).message
    assert "is not a number" in value_close(True, 1.0).message


def test_value_equal():
    assert value_equal(torch.Size([3, 224]), (3, 224)).correct
    assert value_equal(["ant", "bee"], ["ant", "bee"]).correct
    assert value_equal(["ant"], ["ant", "bee"]).message == "Expected 2 items, got 1."


@pytest.mark.parametrize(
    "value",
    [torch.tensor([0.5, 1.0]), np.array([0.5, 1.0]), pd.Series([0.5, 1.0]), [0.5, 1], (0.5, 1.0)],
    ids=["tensor", "numpy", "pandas", "list", "tuple"],
)
def test_as_float_array_reads_every_container_a_learner_uses(value):
    out = as_float_array(value)
    assert out.dtype == np.float64 and out.tolist() == [0.5, 1.0]


@pytest.mark.parametrize("value", [True, np.bool_(False), "abc", [1, "x"]])
def test_as_float_array_refuses_what_is_not_numbers(value):
    with pytest.raises((TypeError, ValueError)):
        as_float_array(value)


@pytest.mark.parametrize("value", [2.5, 3, np.int64(3), np.float32(0.25), torch.tensor(2.5), torch.tensor([7])])
def test_number_reads_one_number_from_python_numpy_or_torch(value):
    got = number(value, "accuracy")
    assert got == pytest.approx(float(value)) and type(got) is float


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), pytest.param(10**400, id="10**400"), "0.5", None, [0.5]])
def test_number_explains_what_is_not_one_finite_number(value):
    # 10**400 used to raise OverflowError from math.isfinite instead of giving feedback
    fb = number(value, "accuracy")
    assert isinstance(fb, Feedback) and not fb.correct
    assert fb.message == f"accuracy must be one finite number; got {value!r}."
