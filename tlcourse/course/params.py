"""Checking a lesson's parameters before any work starts.

Every lesson notebook opens with a cell tagged ``parameters`` (papermill overrides it, the
learner edits it) and then calls::

    params = check_parameters(backbone=backbone, image_size=image_size, epochs=epochs, ...)

A typo such as ``image_size = 2240`` or ``device = "gpu"`` then stops the notebook at once
with a message naming the value, the valid range and where to change it, instead of running
out of memory twenty minutes later or silently training on the wrong device.

Only the course's common parameter names (:data:`COMMON_PARAMETERS`) are checked here; names a
single notebook invents are passed through untouched, because only that notebook knows what
they mean. ``tlcourse run`` applies the same checks to the values it is about to pass, so a
bad ``-p`` or profile value fails before the first kernel starts.
"""
from __future__ import annotations

import re
from pathlib import Path
from collections.abc import Callable
from typing import Any

from .._checks import is_int, is_positive_number
from ..errors import InvalidParameterError

#: Parameter names shared by the lessons, with the rule each value must satisfy.
COMMON_PARAMETERS: dict[str, str] = {
    "backbone": "one of tlcourse.models.available_backbones()",
    "image_size": "an integer from 32 to 1024 (pixels per side)",
    "epochs": "an integer >= 1",
    "batch_size": "an integer >= 1",
    "n_per_class": "an integer >= 1, or None for every image",
    "seed": "an integer >= 0",
    "device": "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
    "lr": "a number > 0 (e.g. 1e-3)",
    "max_images": "an integer >= 1, or None for no limit",
    "dataset": "a course dataset (tlcourse data list) or an existing folder with one sub-folder of photos per class",
    "data_dir": "an existing folder with one sub-folder of photos per class, or None for the lesson's own",
}

_DEVICE = re.compile(r"^(auto|cpu|cuda|mps|cuda:\d+)$")


def _int_at_least(low: int, allow_none: bool = False) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        if value is None:
            return allow_none
        return is_int(value) and value >= low

    return ok


def _image_size(value: Any) -> bool:
    return is_int(value) and 32 <= value <= 1024


def _device(value: Any) -> bool:
    return isinstance(value, str) and bool(_DEVICE.match(value.lower()))


def _backbone_names() -> list[str]:
    # Imported here: the models module pulls in torch, which notebooks have loaded anyway
    # but ``tlcourse run --help`` should not pay for.
    from ..models import available_backbones

    return list(available_backbones())


def _backbone(value: Any) -> bool:
    return isinstance(value, str) and value in _backbone_names()


def _folder(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and Path(value).expanduser().is_dir()


def _dataset_name(value: str) -> bool:
    from ..data.registry import DATASETS  # here: the data package imports torch

    return value in DATASETS


def _dataset(value: Any) -> bool:
    return isinstance(value, str) and (_dataset_name(value) or _folder(value))


_RULES: dict[str, Callable[[Any], bool]] = {
    "backbone": _backbone,
    "image_size": _image_size,
    "epochs": _int_at_least(1),
    "batch_size": _int_at_least(1),
    "n_per_class": _int_at_least(1, allow_none=True),
    "seed": _int_at_least(0),
    "device": _device,
    "lr": is_positive_number,  # NaN and infinity are refused too
    "max_images": _int_at_least(1, allow_none=True),
    "dataset": _dataset,
    "data_dir": lambda value: value is None or _folder(value),
}


FOLDER_PARAMETERS = ("dataset", "data_dir")


def absolute_folders(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each folder given to ``dataset`` / ``data_dir`` as an absolute path.

    ``tlcourse run`` executes every notebook in its own output folder, so a relative
    ``-p dataset=photos`` would be looked for there; the runner resolves it where it was typed.
    """
    out = dict(params)
    for name in FOLDER_PARAMETERS:
        value = out.get(name)
        if isinstance(value, str) and _folder(value) and (name == "data_dir" or not _dataset_name(value)):
            out[name] = str(Path(value).expanduser().resolve())
    return out


def parameter_problems(params: dict[str, Any]) -> list[str]:
    """One sentence per common parameter whose value breaks its rule (empty: all fine).

    Shared by :func:`check_parameters` (inside a notebook) and the runner (before it starts
    any kernel), so both give the same wording.
    """
    problems = []
    for name, value in params.items():
        rule = _RULES.get(name)
        if rule is None or rule(value):
            continue
        expected = COMMON_PARAMETERS[name]
        if name == "backbone":
            expected = f"one of {', '.join(_backbone_names())}"
        if name in ("dataset", "data_dir") and isinstance(value, str):
            where = Path(value).expanduser().resolve()
            expected += (f" ({where} {'is not a folder' if where.exists() else 'does not exist'}; a relative path "
                         "is read from the folder the notebook runs in, so an absolute path is safest)")
        problems.append(f"{name}={value!r} is not valid: {name} must be {expected}.")
    return problems


def check_parameters(**params: Any) -> dict[str, Any]:
    """Check the common parameters of a lesson and return them unchanged.

    Raises :class:`~tlcourse.errors.InvalidParameterError` listing every bad value at once
    (fixing them one run at a time is slow when each run imports torch). Names outside
    :data:`COMMON_PARAMETERS` are notebook-specific and are not checked.
    """
    problems = parameter_problems(params)
    if problems:
        bad = [p.split("=", 1)[0] for p in problems]
        example = " ".join(f"-p {name}=..." for name in bad)
        raise InvalidParameterError(
            " ".join(problems)
            + " Edit the notebook's parameters cell (the first code cell, tagged 'parameters') "
            f"and run it again, or pass the value to the course runner: tlcourse run {example}"
        )
    return params
