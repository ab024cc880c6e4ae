"""Checkers for lesson 08 (different domains, imbalance, metrics).

Each one recomputes the right answer from the learner's own data and, when the answer is wrong,
names the likely mistake rather than just "wrong":

- :func:`class_weighted_loss`: ``nn.CrossEntropyLoss(weight=...)`` with the rare class weighted up
  (no weights, weights proportional to the counts instead of inversely, wrong length);
- :func:`balanced_accuracy_value`: the mean of the per-class recalls (plain accuracy, one
  class's recall, precision);
- :func:`threshold_for_recall`: the highest threshold whose recall still reaches a target
  (too high: misses the target; needlessly low: more false alarms than necessary);
- :func:`ece_value`: the expected calibration error by hand (bins not weighted by their size, the
  positive class's probability instead of the confidence, the largest gap instead of the mean);
- :func:`temperature_value`: a temperature fitted on the validation predictions (fitted on the
  test images, not fitted at all, the inverse).
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




def _positive_class_ece(probs: Any, labels: Any, n_bins: int) -> float:
    """The mistake of binning P(class 1) and comparing it with the share of class 1 (a reliability
    curve of one class, not the confidence ECE)."""
    p = np.asarray(probs, dtype=float)[:, 1]
    y = np.asarray(labels, dtype=float)
    which = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(total)


@register_checker
def ece_value(value: Any, probs: Any, labels: Any, n_bins: int = 10) -> Feedback:
    """``value`` is the expected calibration error of ``probs`` (N, 2) against ``labels`` with
    ``n_bins`` equal-width bins of the confidence (the probability of the predicted class)."""
    from ...calibration import reliability_bins

    if not is_number(value):
        return Feedback(False, f"ece must be a number, got {type(value).__name__}.")
    bins = reliability_bins(probs, labels, n_bins)
    used = bins[bins["count"] > 0]
    gaps = (used["accuracy"] - used["confidence"]).abs()
    right = float((gaps * used["count"]).sum() / used["count"].sum())
    if _close(value, right, 1e-4):
        return Feedback(True, f"Right: ECE = {right:.4f} over {len(used)} non-empty bins.")
    if _close(value, float(gaps.mean()), 1e-4):
        return Feedback(False, "You averaged the bins' gaps with equal weights. Weight each bin by its share of the "
                               "predictions: a bin with 2 images must not count as much as one with 100.")
    if _close(value, float(gaps.max()), 1e-4):
        return Feedback(False, "That is the largest gap of any bin (the maximum calibration error), not the weighted mean.")
    if _close(value, _positive_class_ece(probs, labels, n_bins), 1e-4):
        return Feedback(False, "You binned P(class 1). The ECE bins the confidence: the probability of the *predicted* "
                               "class, probs.max(1), compared with whether that prediction was right.")
    return Feedback(False, f"{float(value):.4f} is not the expected calibration error of these predictions.")


@register_checker
def temperature_value(temperature: Any, val_probs: Any, val_labels: Any, test_probs: Any, test_labels: Any) -> Feedback:
    """``temperature`` minimises the cross-entropy of ``softmax(log(val_probs) / T)`` on the validation
    labels (2% tolerance, so a fine grid search passes)."""
    from ...calibration import fit_temperature, logits_from_probs

    if not is_number(temperature) or not float(temperature) > 0:
        return Feedback(False, f"temperature must be a positive number, got {temperature!r}.")
    t = float(temperature)
    right = fit_temperature(logits_from_probs(val_probs), val_labels)
    if math.isclose(t, right, rel_tol=0.02):
        return Feedback(True, f"Right: T = {right:.3f}, fitted on the validation predictions "
                              f"({'softer' if right > 1 else 'sharper'} than the raw model).")
    on_test = fit_temperature(logits_from_probs(test_probs), test_labels)
    if math.isclose(t, on_test, rel_tol=0.02):
        return Feedback(False, "This temperature was fitted on the test images. Fit it on the validation predictions, or "
                               "the test set no longer measures how the calibrated model does on new images.")
    if t == 1.0:
        return Feedback(False, "T = 1 leaves the probabilities as they are: minimise the cross-entropy over T.")
    if math.isclose(t, 1 / right, rel_tol=0.02):
        return Feedback(False, "You found 1 / T: the logits are *divided* by the temperature, softmax(logits / T).")
    return Feedback(False, f"T = {t:.3f} does not minimise the validation cross-entropy (the minimum is near T = {right:.2f}).")


__all__ = ["balanced_accuracy_value", "class_weighted_loss", "ece_value", "temperature_value", "threshold_for_recall"]
