"""Checkers for lesson 08 (different domains, imbalance, metrics).

Each one recomputes the right answer from the learner's own data and, when the answer is wrong,
names the likely mistake rather than just "wrong":

- :func:`class_weighted_loss`: ``nn.CrossEntropyLoss(weight=...)`` with the rare class weighted up
  (no weights, weights proportional to the counts instead of inversely, wrong length);
- :func:`balanced_accuracy_value`: the mean of the per-class recalls (plain accuracy, one
  class's recall, precision);
- :func:`threshold_for_recall`: the highest threshold whose recall still reaches a target
  (too high: misses the target; needlessly low: more false alarms than necessary).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch import nn

from ..._checks import is_number
from ...errors import InvalidParameterError
from ..feedback import Feedback
from .common import number_and_vectors, vector
from .registry import register_checker


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)


@register_checker
def class_weighted_loss(criterion: Any, counts: Any) -> Feedback:
    """``criterion`` is an ``nn.CrossEntropyLoss`` whose class weights are inversely proportional to
    ``counts`` (any common scale: ``1 / count`` or ``n / (C * count)`` are both right)."""
    n = vector(counts, "counts")
    if isinstance(n, Feedback):
        raise InvalidParameterError(f"class_weighted_loss: {n.message}")
    if not isinstance(criterion, nn.CrossEntropyLoss):
        return Feedback(False, f"criterion is a {type(criterion).__name__}; build an nn.CrossEntropyLoss(weight=...).")
    weight = criterion.weight
    if weight is None:
        return Feedback(False, "The loss has no class weights (weight=None): every image counts the same, so the "
                               "common class dominates. Pass weight=torch.tensor([...]), one number per class.")
    w = weight.detach().cpu().double().numpy()
    if w.shape != n.shape:
        return Feedback(False, f"The loss has {w.size} weight(s) for {n.size} classes: give one weight per class, in class order.")
    if (w <= 0).any():
        return Feedback(False, "Every class weight must be positive; a weight of 0 or less ignores (or rewards) a class.")
    inverse = 1.0 / n
    if np.allclose(w / w.sum(), inverse / inverse.sum(), rtol=1e-4):
        rare = int(np.argmin(n))
        return Feedback(True, f"Right: weights proportional to 1 / count, so the rarest class (index {rare}) weighs "
                              f"{w[rare] / w.min():.2f}x the most common one.")
    if np.allclose(w / w.sum(), n / n.sum(), rtol=1e-4):
        return Feedback(False, "Your weights are proportional to the counts: the common class weighs most, which makes the "
                               "imbalance worse. Invert them: weight = total / (n_classes * count).")
    if np.allclose(w, w[0]):
        return Feedback(False, "All classes have the same weight, which changes nothing. Weight each class by 1 / its count.")
    return Feedback(False, f"The weights {np.round(w, 4).tolist()} are not proportional to 1 / count for counts "
                           f"{n.astype(int).tolist()}. Use weight = counts.sum() / (len(counts) * counts).")


@register_checker
def balanced_accuracy_value(value: Any, labels: Any, preds: Any) -> Feedback:
    """``value`` is the balanced accuracy of ``preds``: the mean over classes of each class's recall."""
    parsed = number_and_vectors(value, "value", labels, "labels", preds, "preds")
    if isinstance(parsed, Feedback):
        return parsed
    v, y, p = parsed
    classes = np.unique(y)
    recalls = {int(c): float((p[y == c] == c).mean()) for c in classes}
    right = float(np.mean(list(recalls.values())))
    if _close(v, right) or (v > 1 and _close(v / 100, right)):
        return Feedback(True, f"Right: balanced accuracy {right:.4f}, the mean of the recalls "
                              + ", ".join(f"class {c}: {r:.3f}" for c, r in recalls.items()) + ".")
    accuracy = float((p == y).mean())
    if _close(v, accuracy):
        return Feedback(False, f"{v:.4f} is the plain accuracy (correct / all). Balanced accuracy averages the recall "
                               "of each class, so a rare class counts as much as a common one.")
    for c, r in recalls.items():
        if _close(v, r):
            return Feedback(False, f"{v:.4f} is the recall of class {c} only. Average the recalls of all classes.")
    for c in classes:
        flagged = p == c
        if flagged.any() and _close(v, float((y[flagged] == c).mean())):
            return Feedback(False, f"{v:.4f} is the precision of class {int(c)}. Balanced accuracy uses recall: among the "
                                   "images of a class, the share predicted as that class.")
    return Feedback(False, f"{v:.4f} is not the balanced accuracy ({'too high' if v > right else 'too low'}). For each class, "
                           "take the share of its images predicted correctly; then average those shares.")


@register_checker
def threshold_for_recall(threshold: Any, scores: Any, labels: Any, target: float) -> Feedback:
    """``threshold`` flags ``scores >= threshold`` as positive (label 1) and is the highest one whose
    recall reaches ``target``: it catches enough positives with as few false alarms as possible."""
    if not is_number(target) or not 0 < target <= 1:
        raise InvalidParameterError(f"threshold_for_recall needs 0 < target <= 1, got {target!r}.")
    parsed = number_and_vectors(threshold, "threshold", scores, "scores", labels, "labels")
    if isinstance(parsed, Feedback):
        return parsed
    t, s, y = parsed
    positive = y == 1
    if not positive.any():
        return Feedback(False, "labels has no positive (1) example, so recall is undefined: pass the true labels.")

    def recall(th: float) -> float:
        return float((s[positive] >= th).mean())

    def precision(th: float) -> float:
        flagged = s >= th
        return float(positive[flagged].mean()) if flagged.any() else 1.0

    best = max(float(c) for c in np.unique(s) if recall(float(c)) >= target)
    if recall(t) < target:
        return Feedback(False, f"At threshold {t:.4g} the recall is {recall(t):.1%}, below the target {target:.0%}: "
                               f"lower the threshold (flag more images).")
    if np.array_equal(s >= t, s >= best):
        return Feedback(True, f"Right: threshold {t:.4g} reaches recall {recall(t):.1%} with precision {precision(t):.1%}; "
                              "any higher threshold would miss the target.")
    extra = int((s >= t).sum() - (s >= best).sum())
    return Feedback(False, f"Recall {recall(t):.1%} reaches the target, but the threshold is lower than it needs to be: "
                           f"a higher one (up to {best:.4g}) still reaches {target:.0%} and flags {extra} fewer image(s) "
                           f"(precision {precision(best):.1%} instead of {precision(t):.1%}).")


__all__ = ["balanced_accuracy_value", "class_weighted_loss", "threshold_for_recall"]
