"""The numeric argument checks every public function of the course shares.

One wording everywhere ("epochs must be an integer >= 1, got 0."), and the two traps handled
once: ``bool`` is an ``int`` subclass in Python (``epochs=True`` is always a mistake, never 1),
and NaN compares false with everything (``lr=nan`` must not slip through ``lr > 0`` checks
written the other way round). numpy integers and floats count as numbers, torch tensors don't.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from .errors import InvalidParameterError


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), but not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (int, float, numpy scalar), but not a bool. NaN and infinity count."""
    return isinstance(value, Real) and not isinstance(value, bool)


def is_positive_number(value: Any) -> bool:
    """A finite number above zero that fits a float (NaN, infinity and 10**400 do not)."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # an int too large for a float
        return False


def _prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


def int_at_least(value: Any, name: str, minimum: int, *, where: str | None = None) -> int:
    """``value`` as an ``int`` if it is an integer >= ``minimum``, else
    :class:`InvalidParameterError` naming ``name`` (and ``where``, e.g. the function)."""
    if not is_int(value) or value < minimum:
        raise InvalidParameterError(
            f"{_prefix(where)}{name} must be an integer >= {minimum}, got {value!r}."
        )
    return int(value)


def positive_number(value: Any, name: str, *, where: str | None = None) -> float:
    """``value`` as a ``float`` if it is a finite number above zero, else
    :class:`InvalidParameterError` naming ``name`` (and ``where``)."""
    if not is_positive_number(value):
        raise InvalidParameterError(
            f"{_prefix(where)}{name} must be a positive number, got {value!r}."
        )
    return float(value)


def int_in_range(value: Any, name: str, low: int, high: int, *, where: str | None = None) -> int:
    """``value`` as an ``int`` if it is an integer from ``low`` to ``high`` (both included),
    else :class:`InvalidParameterError` naming ``name`` and the range."""
    if not is_int(value) or not low <= value <= high:
        raise InvalidParameterError(
            f"{_prefix(where)}{name} must be an integer from {low} to {high}, got {value!r}."
        )
    return int(value)
