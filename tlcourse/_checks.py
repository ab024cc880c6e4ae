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


def is_finite_number(value: Any) -> bool:
    """A number that fits a float and is neither NaN nor infinite (10**400 does not fit).

    ``math.isfinite`` raises ``OverflowError`` on such an int; this answers ``False``.
    """
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def is_positive_number(value: Any) -> bool:
    """A finite number above zero that fits a float (NaN, infinity and 10**400 do not)."""
    return is_finite_number(value) and value > 0


def _refuse(where: str | None, name: str, rule: str, value: Any, hint: str | None) -> InvalidParameterError:
    prefix = f"{where}: " if where else ""
    suffix = f" {hint}" if hint else ""
    return InvalidParameterError(f"{prefix}{name} must be {rule}, got {value!r}.{suffix}")


def int_at_least(
    value: Any, name: str, minimum: int, *, where: str | None = None, hint: str | None = None
) -> int:
    """``value`` as an ``int`` if it is an integer >= ``minimum``, else
    :class:`InvalidParameterError` naming ``name`` (and ``where``, e.g. the function), then
    ``hint`` (what the value means, or what else is allowed)."""
    if not is_int(value) or value < minimum:
        raise _refuse(where, name, f"an integer >= {minimum}", value, hint)
    return int(value)


def positive_number(
    value: Any, name: str, *, where: str | None = None, hint: str | None = None
) -> float:
    """``value`` as a ``float`` if it is a finite number above zero, else
    :class:`InvalidParameterError` naming ``name`` (and ``where``, then ``hint``)."""
    if not is_positive_number(value):
        raise _refuse(where, name, "a positive number", value, hint)
    return float(value)


def int_in_range(
    value: Any, name: str, low: int, high: int, *, where: str | None = None, hint: str | None = None
) -> int:
    """``value`` as an ``int`` if it is an integer from ``low`` to ``high`` (both included),
    else :class:`InvalidParameterError` naming ``name`` and the range (then ``hint``)."""
    if not is_int(value) or not low <= value <= high:
        raise _refuse(where, name, f"an integer from {low} to {high}", value, hint)
    return int(value)
