"""Checkers for lesson 07 (the plant-disease case study): per-class recall and the export file.

Like every checker they return :class:`Feedback` whose message
names the mistake (precision computed instead of recall, percentages instead of fractions, a
preprocessing at the wrong size, class names out of order) and raise only for a bank's mistake.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CourseError
from ..feedback import Feedback
from .common import as_float_array, fail
from .registry import register_checker


def _vector(value: Any) -> np.ndarray | None:
    """The numbers in ``value`` as a float array, or None when it holds no numbers at all."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        return as_float_array(value)
    except (TypeError, ValueError):
        return None


def _labels(values: Any, name: str) -> np.ndarray:
    arr = _vector(values)
    if arr is None or arr.ndim != 1 or not np.all(arr == np.round(arr)):
        raise CourseError(f"per_class_recall: {name} must be a 1-D array of class indices (the notebook's data).")
    return arr.astype(np.int64)


@register_checker
def per_class_recall(value: Any, labels: Any, preds: Any, num_classes: int) -> Feedback:
    """One recall per class: of the images that truly are class c, the fraction predicted c.

    ``labels`` and ``preds`` are the notebook's true and predicted classes (not the learner's
    answer); ``value`` is the learner's vector. Common mistakes are recognised: precision
    (dividing by how often a class was *predicted*), raw counts, percentages, one overall number.
    """
    y, p = _labels(labels, "labels"), _labels(preds, "preds")
    if len(y) != len(p) or len(y) == 0:
        raise CourseError("per_class_recall: labels and preds must be non-empty and of the same length.")
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (y, p), 1)
    hits = np.diag(counts)
    recall = hits / np.maximum(counts.sum(1), 1)
    precision = hits / np.maximum(counts.sum(0), 1)
    got = _vector(value)
    if got is None:
        return Feedback(False, f"Expected an array of {num_classes} recalls (one per class), got {value!r:.60}.")
    if got.ndim == 0 or got.size == 1:
        return Feedback(
            False,
            "That is one number for all classes. Recall is per class: for each class c, the correct "
            f"predictions of c divided by the number of images whose true class is c ({num_classes} values).",
        )
    if got.shape != (num_classes,):
        if got.shape == (num_classes, num_classes):
            return Feedback(False, "That is a whole matrix (the confusion matrix?). Reduce it to one recall per class.")
        return Feedback(False, f"Expected {num_classes} values (one per class), got shape {tuple(got.shape)}.")
    if np.isnan(got).any():
        return Feedback(False, "Some recalls are NaN: a division by zero? Every class has test images here.")

    def close(a: np.ndarray, b: np.ndarray) -> bool:
        return bool(np.allclose(a, b, rtol=0, atol=1e-3))

    if close(got, recall):
        return Feedback(True, f"Right: the lowest recall is {recall.min():.2f} (class {int(recall.argmin())}).")
    if close(got, precision) and not close(precision, recall):
        return Feedback(
            False,
            "These are precisions: you divided by how often each class was *predicted* (the confusion "
            "matrix's column sums). Recall divides by how many images truly are that class (row sums).",
        )
    if close(got, hits):
        return Feedback(False, "These are counts of correct predictions; divide each by its class's number of true images.")
    if close(got, 100 * recall):
        return Feedback(False, "These are percentages; give fractions between 0 and 1 (divide by 100).")
    bad = np.flatnonzero(np.abs(got - recall) > 1e-3)
    return Feedback(
        False,
        f"{len(bad)} of {num_classes} values are off (the first at class {int(bad[0])}). For each class c: "
        "correct predictions of c / images whose true class is c.",
    )


@register_checker
def exported_model_file(
    path: Any,
    class_names: Sequence[str],
    image_size: int,
    backbone: str = "mobilenet_v2",
    provenance_keys: Sequence[str] = ("backbone", "dataset", "test_accuracy"),
) -> Feedback:
    """The file at ``path`` is a tlcourse export a stranger could use: right class names in
    output order, the backbone's preprocessing at the training size, and the provenance keys.

    Only the metadata is read (fast); the network itself is checked by ``export_model`` when
    it writes the file.
    """
    from ...deploy import read_metadata
    from ...models import get_spec

    if path is None or not isinstance(path, (str, os.PathLike)):
        return Feedback(False, f"Pass the path of your exported file, got {path!r:.60}.")
    path = Path(path)
    if not path.is_file():
        return Feedback(False, f"There is no file at {path}: call export_model(model, path, ...) first.")
    try:
        meta = read_metadata(path)
    except CourseError as exc:
        return Feedback(False, str(exc))
    problems: list[str] = []
    names = list(meta.get("class_names") or [])
    expected = list(class_names)
    if names != expected:
        if sorted(names) == sorted(expected):
            problems.append(
                "The class names are the right ones but in another order: output i of the network must "
                "be named by class_names[i], so pass the dataset's own list (e.g. plants.classes), unsorted."
            )
        elif len(names) != len(expected):
            problems.append(f"The file names {len(names)} classes; the model has {len(expected)} outputs.")
        else:
            first = next(i for i, (a, b) in enumerate(zip(names, expected)) if a != b)
            problems.append(
                f"Class name {first} is {names[first]!r}, not the dataset's {expected[first]!r}: pass the "
                "dataset's class names."
            )
    pre = meta.get("preprocessing") or {}
    if pre.get("crop_size") != image_size:
        problems.append(
            f"The preprocessing crops to {pre.get('crop_size')} px but the model was trained on {image_size} px "
            "images: pass preprocessing.at(image_size), or the app will feed it images of the wrong size."
        )
    spec = get_spec(backbone).preprocessing
    mean, std = pre.get("mean"), pre.get("std")
    if mean is None or std is None or not (np.allclose(mean, spec.mean) and np.allclose(std, spec.std)):
        problems.append(
            f"The mean/std {mean}/{std} are not {backbone}'s own ({list(spec.mean)}/{list(spec.std)}): "
            f"use the Preprocessing that create_model({backbone!r}, ...) returned."
        )
    prov = meta.get("provenance") or {}
    missing = [k for k in provenance_keys if k not in prov]
    if missing:
        problems.append(f"The provenance lacks {', '.join(missing)}: whoever gets the file cannot tell where it came from.")
    elif prov.get("backbone") != backbone:
        problems.append(f"The provenance says backbone {prov.get('backbone')!r}, but the model is {backbone!r}.")
    if problems:
        return fail(problems)
    return Feedback(
        True,
        f"The file holds the network, the {len(names)} class names in output order, the {image_size} px "
        f"preprocessing and its provenance ({', '.join(sorted(prov)[:6])}, ...).",
    )


__all__ = ["exported_model_file", "per_class_recall"]
