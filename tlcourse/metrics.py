"""Metrics over class predictions, and the check that makes their inputs safe to count.

A confusion matrix is a number, not a picture: :func:`confusion_counts` computes it and
:func:`tlcourse.plots.plot_confusion_matrix` draws it. The counting itself is scikit-learn's
``confusion_matrix``; this module adds what a learner needs around it: class indices checked
against the number of classes (with a message that says which index is out of range and
why), and a square ``num_classes x num_classes`` result even when some classes, or all
images, are missing.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ._checks import int_at_least
from .errors import InvalidParameterError


def class_indices(values: Any, n: int | None, num_classes: int, what: str, where: str) -> np.ndarray:
    """Class indices as a 1-D ``int64`` array, checked against ``n`` entries and the classes.

    Accepts tensors, arrays and lists; a column ``(N, 1)`` and whole-number floats are taken
    as they are meant. ``what`` names the argument and ``where`` the caller in the message.
    """
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidParameterError(
            f"{where}: {what} must be a 1-D sequence of class indices, got shape {arr.shape}. "
            "For probabilities or logits take .argmax(1) first."
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidParameterError(
                f"{where}: {what} must hold integer class indices, got dtype {arr.dtype}."
            )
    if n is not None and len(arr) != n:
        raise InvalidParameterError(f"{where}: {what} has {len(arr)} entries but there are {n} images/predictions.")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        bad = int(arr.min() if arr.min() < 0 else arr.max())
        raise InvalidParameterError(
            f"{where}: {what} contains class index {bad}, outside 0..{num_classes - 1} "
            f"(class_names has {num_classes} names). Pass the class names of the same dataset."
        )
    return arr.astype(np.int64)


def confusion_counts(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """``counts[t, p]`` = how many images of true class ``t`` were predicted as ``p``.

    Always ``(num_classes, num_classes)`` ``int64``: empty inputs give all zeros (the caller
    decides whether that is an error), and a one-class problem gives its 1x1 count.
    """
    from sklearn.metrics import confusion_matrix

    where = "confusion_counts"
    num_classes = int_at_least(num_classes, "num_classes", 1, where=where)
    t = class_indices(y_true, None, num_classes, "y_true", where)
    p = class_indices(y_pred, len(t), num_classes, "y_pred", where)
    if t.size == 0:  # scikit-learn refuses empty inputs; no images means no counts
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    with warnings.catch_warnings():
        # labels= fixes the shape, so a 1x1 matrix is what was asked for, not the mistake
        # scikit-learn warns about ("use the 'labels' parameter")
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        counts = confusion_matrix(t, p, labels=np.arange(num_classes))
    return counts.astype(np.int64)


__all__ = ["class_indices", "confusion_counts"]
