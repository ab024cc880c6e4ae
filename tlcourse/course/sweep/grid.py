"""``--grid KEY=V1,V2,...``: the values a sweep tries, and every combination of them.

Each grid's values are read with the ``-p`` dialect (:mod:`tlcourse.course.runner.values`) as
one flow list, so ``seed=0,1,2`` is three integers, ``lr=1e-3,3e-4`` two floats,
``augmentation=flip,none`` two strings and ``sizes=[5,10],[20,50]`` two lists. A sweep is the
Cartesian product of its grids, in the order they were given.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import InvalidParameterError
from ..runner.values import parse_assignment

_EXAMPLE = "e.g. --grid seed=0,1,2 --grid image_size=128,160"


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """``"seed=0,1,2"`` -> ``("seed", [0, 1, 2])``; an empty or repeated value is refused."""
    key, sep, raw = text.partition("=")
    if not sep or not raw.strip():
        raise InvalidParameterError(
            f"Cannot read --grid {text!r}: expected KEY=V1,V2,... with at least one value, "
            f"{_EXAMPLE}."
        )
    name, values = parse_assignment(f"{key}=[{raw}]")
    if not isinstance(values, list) or not values:
        raise InvalidParameterError(f"Cannot read --grid {text!r}: no values; {_EXAMPLE}.")
    seen: list[Any] = []
    for value in values:
        if any(type(value) is type(old) and value == old for old in seen):
            raise InvalidParameterError(
                f"--grid {text!r} lists {value!r} twice; each value is one run, give it once."
            )
        seen.append(value)
    return name, values


def parse_grids(texts: Sequence[str], fixed: Sequence[str] = ()) -> dict[str, list[Any]]:
    """Every ``--grid``, in order; a key given twice, or also fixed by ``-p``, is refused."""
    grids: dict[str, list[Any]] = {}
    for text in texts:
        name, values = parse_grid(text)
        if name in grids:
            raise InvalidParameterError(
                f"--grid {name}=... is given twice; put all its values in one: "
                f"--grid {name}=V1,V2,..."
            )
        grids[name] = values
    return check_grids(grids, fixed)


def check_grids(grids: Mapping[str, Sequence[Any]], fixed: Sequence[str] = ()
                ) -> dict[str, list[Any]]:
    """The grids as lists, refusing none at all, an empty one, or a key also fixed by ``-p``
    (the grid would silently override it)."""
    if not grids:
        raise InvalidParameterError(f"A sweep needs at least one --grid KEY=V1,V2,...; {_EXAMPLE}.")
    checked = {}
    for name, values in grids.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InvalidParameterError(
                f"--grid {name}: {values!r} is not a non-empty list of values; {_EXAMPLE}.")
        if name in fixed:
            raise InvalidParameterError(
                f"{name} is both swept (--grid {name}=...) and fixed (-p {name}=...); drop one."
            )
        checked[str(name)] = list(values)
    return checked


def combinations(grids: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The Cartesian product of the grids: ``{"seed": 0, "image_size": 128}``, ..."""
    names = list(grids)
    return [dict(zip(names, values)) for values in itertools.product(*grids.values())]


def _token(value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value))
    text = re.sub(r"\.{2,}", ".", text).strip("_.")
    return text or "_"


def combination_label(values: dict[str, Any]) -> str:
    """How reports name a combination: ``image_size=128, seed=0`` (grid order)."""
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


def folder_name(notebook_stem: str, values: dict[str, Any], index: int) -> str:
    """A task's folder: ``07_case_plant_disease-seed_0-image_size_128`` (file-name safe; the
    index keeps two values that print alike, such as ``1`` and ``"1"``, apart)."""
    parts = [f"{name}_{_token(value)}" for name, value in values.items()]
    return "-".join([notebook_stem, *parts, f"t{index:03d}"])
