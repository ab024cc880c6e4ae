"""The shared numeric argument checks (tlcourse/_checks.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tlcourse._checks import (
    int_at_least,
    int_in_range,
    is_finite_number,
    is_int,
    is_number,
    is_positive_number,
    positive_number,
)
from tlcourse.errors import InvalidParameterError


def test_bools_are_not_numbers_but_numpy_scalars_are():
    assert not is_int(True) and not is_number(False) and not is_positive_number(True)
    assert is_int(np.int64(3)) and is_number(np.float32(0.5)) and not is_int(3.0)
    assert not is_number("3") and not is_number(None)


@pytest.mark.parametrize("value", [0.5, 3, np.float64(1e-4), 2**1000])
def test_positive_numbers(value):
    assert is_positive_number(value)
    got = positive_number(value, "lr")
    assert got == float(value) and type(got) is float


@pytest.mark.parametrize(
    "value", [0, -1, math.nan, math.inf, -math.inf, 10**400, True, "0.1", None])
def test_not_positive_numbers_are_refused_naming_the_argument(value):
    assert not is_positive_number(value)
    with pytest.raises(InvalidParameterError) as info:
        positive_number(value, "lr", where="warmup_cosine")
    assert str(info.value) == f"warmup_cosine: lr must be a positive number, got {value!r}."


def test_int_at_least_returns_a_plain_int():
    got = int_at_least(np.int64(4), "threads", 1)
    assert got == 4 and type(got) is int
    assert int_at_least(0, "warmup_steps", 0) == 0


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "2", None])
def test_int_at_least_refuses_naming_the_argument_and_the_minimum(value):
    with pytest.raises(InvalidParameterError) as info:
        int_at_least(value, "epochs", 1)
    assert str(info.value) == f"epochs must be an integer >= 1, got {value!r}."


def test_int_in_range_includes_both_ends_and_names_the_range():
    assert int_in_range(np.int32(1), "top_k", 1, 5) == 1 and int_in_range(5, "top_k", 1, 5) == 5
    for value in (0, 6, 2.0, False):
        with pytest.raises(InvalidParameterError) as info:
            int_in_range(value, "top_k", 1, 5, where="predict")
        assert str(info.value) == f"predict: top_k must be an integer from 1 to 5, got {value!r}."


@pytest.mark.parametrize("value", [0, -2.5, np.float32(1.5), np.int64(-3), 2**1000])
def test_finite_numbers_of_either_sign(value):
    assert is_finite_number(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, -(10**400), True, "1", None])
def test_not_finite_numbers_give_false_instead_of_raising(value):
    # math.isfinite(10**400) raises OverflowError: the predicate answers False instead
    assert not is_finite_number(value)


def test_a_hint_follows_the_message():
    with pytest.raises(InvalidParameterError) as info:
        int_at_least(1, "num_classes", 2, hint="A classifier needs at least two classes.")
    assert str(info.value) == "num_classes must be an integer >= 2, got 1. A classifier needs at least two classes."
    with pytest.raises(InvalidParameterError) as info:
        int_in_range(9, "k", 0, 7, where="unfreeze_top", hint="Stages: a, b.")
    assert str(info.value) == "unfreeze_top: k must be an integer from 0 to 7, got 9. Stages: a, b."
