"""``tlcourse.json``: what an export says about its network, written and read back.

The numbers a classifier outputs mean nothing without the class names, and its inputs must be
prepared exactly as in training (crop, resize, mean, std). So every export carries, next to
the network, one small JSON member holding

- ``format`` / ``format_version``: what the file is, so a newer format is refused by name;
- ``class_names``: one per output, in output order;
- ``preprocessing``: the :class:`~tlcourse.models.Preprocessing` the network was trained with;
- ``provenance``: backbone, dataset, accuracy, image size, tlcourse and torch versions, date.

:mod:`tlcourse.deploy.export` writes it and :mod:`tlcourse.deploy.load` reads it; the
conversions and checks both sides share live here, so the two can never disagree.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import InterpolationMode

from ..errors import CourseError, InvalidParameterError
from ..models.preprocessing import Preprocessing

FORMAT = "tlcourse-export"
FORMAT_VERSION = 1
METADATA_FILE = "tlcourse.json"


def preprocessing_to_dict(pre: Preprocessing) -> dict[str, Any]:
    """The preprocessing as plain JSON values (tuples as lists, the interpolation by name)."""
    data = asdict(pre)
    data["mean"], data["std"] = list(pre.mean), list(pre.std)
    data["interpolation"] = pre.interpolation.value
    return data


def preprocessing_from_dict(data: Mapping[str, Any], where: Path) -> Preprocessing:
    """The recorded preprocessing back; a :class:`CourseError` naming ``where`` if it is damaged."""
    try:
        return Preprocessing(
            crop_size=int(data["crop_size"]),
            resize_size=int(data["resize_size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=InterpolationMode(data["interpolation"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CourseError(
            f"{where}: the preprocessing recorded in this export is incomplete or invalid "
            f"({exc.__class__.__name__}: {exc}). The file was edited or damaged; export the model again."
        ) from exc


def check_class_names(class_names: Any) -> list[str]:
    """At least two distinct, non-empty names: one per model output."""
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise InvalidParameterError(
            f"class_names must be a list of class names (one per model output), got {class_names!r:.80}."
        )
    names = list(class_names)
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise InvalidParameterError(f"class_names must be non-empty strings; these are not: {bad[:5]!r}.")
    if len(names) < 2:
        raise InvalidParameterError(f"class_names needs at least two classes, got {names!r}.")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidParameterError(f"class_names has duplicates: {', '.join(dupes)}. Each output needs its own name.")
    return names


def complete_provenance(provenance: Any, pre: Preprocessing, num_classes: int) -> dict[str, Any]:
    """The caller's provenance (JSON values only), completed with the facts known at export time."""
    from .. import __version__
    from ..course.results import to_json_safe

    if not isinstance(provenance, Mapping):
        raise InvalidParameterError(
            "provenance must be a dict, e.g. {'backbone': 'mobilenet_v2', 'dataset': 'plantvillage', "
            f"'test_accuracy': 0.97}}; got {type(provenance).__name__}."
        )
    try:
        given = to_json_safe(dict(provenance), "provenance")
    except CourseError as exc:
        raise InvalidParameterError(
            "provenance must hold only numbers, strings, booleans, None, or lists/dicts of them "
            f"(it is stored as JSON next to the model): {str(exc).split(':')[0]}."
        ) from exc
    if "image_size" in given and given["image_size"] != pre.crop_size:
        raise InvalidParameterError(
            f"provenance says image_size={given['image_size']!r} but the preprocessing crops to "
            f"{pre.crop_size} px. Pass preprocessing.at(image_size) for the size the model was trained at."
        )
    info: dict[str, Any] = {
        "image_size": pre.crop_size,
        "num_classes": num_classes,
        "tlcourse_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    info.update(given)
    return info


def build_metadata(class_names: list[str], pre: Preprocessing, provenance: dict[str, Any]) -> dict[str, Any]:
    """The whole ``tlcourse.json`` of an export (``class_names`` and ``provenance`` already checked)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class_names": class_names,
        "preprocessing": preprocessing_to_dict(pre),
        "provenance": provenance,
        "input": {"shape": ["batch", 3, pre.crop_size, pre.crop_size],
                  "dtype": "float32", "meaning": "RGB, resized, centre-cropped and normalised with mean/std"},
    }


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "build_metadata",
    "check_class_names",
    "complete_provenance",
    "preprocessing_from_dict",
    "preprocessing_to_dict",
]
