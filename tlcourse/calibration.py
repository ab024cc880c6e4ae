"""Are a classifier's probabilities honest? Reliability bins, expected calibration error, temperature.

A screening threshold ("flag every X-ray with P(pneumonia) >= 0.2") is only meaningful if 0.2
means one in five: the threshold is read as a probability, so the probabilities must be
calibrated. Networks trained with cross-entropy on a few hundred images, and linear probes on
many features, are usually *over*confident: among the images they give 95%, far fewer than 95%
are right.

- :func:`reliability_bins` groups predictions by confidence (the probability of the predicted
  class) and compares each bin's mean confidence with its accuracy: the numbers behind
  :func:`tlcourse.plots.plot_reliability`.
- :func:`expected_calibration_error` (ECE) is the gap between the two, averaged over the bins
  weighted by how many predictions fall in each: 0 for perfectly calibrated probabilities.
- :func:`fit_temperature` finds the one number ``T`` that divides the logits before the softmax
  and minimises the negative log-likelihood on *validation* data (temperature scaling, Guo et
  al. 2017). ``T > 1`` softens overconfident probabilities. Dividing by a positive number never
  changes which class is largest, so accuracy stays exactly the same; only the confidence moves.
  Fitting it on the test set would grade the model on the data it was tuned on.

Probabilities rather than logits are what :class:`tlcourse.experiments.Run` keeps; their
logarithm is a valid set of logits (the softmax of ``log p`` is ``p``), which is what
:func:`logits_from_probs` returns.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ._checks import int_at_least, positive_number
from .errors import InvalidParameterError
from .metrics import class_indices

#: Probabilities are clipped to this before their logarithm is taken: an exact 0 from a
#: saturated logistic regression would otherwise be a logit of minus infinity.
SMALLEST_PROBABILITY = 1e-7


def check_probabilities(probs: Any, where: str) -> torch.Tensor:
    """``(N, C)`` class probabilities as float64; logits and bad shapes are refused with the fix."""
    p = torch.as_tensor(probs.detach().cpu() if isinstance(probs, torch.Tensor) else np.asarray(probs)).double()
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] == 0:
        raise InvalidParameterError(
            f"{where}: probs must have shape (images, classes) with at least one image and two classes, "
            f"got {tuple(p.shape)}. For a binary model's P(positive) use torch.stack([1 - p, p], 1)."
        )
    if not torch.isfinite(p).all() or p.min() < -1e-6 or p.max() > 1 + 1e-6 or not torch.allclose(
        p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-3
    ):
        raise InvalidParameterError(
            f"{where}: probs must be probabilities (each row in [0, 1], summing to 1). "
            "These look like logits: pass logits.softmax(1) instead."
        )
    return p.clamp(0.0, 1.0)


def _labels(labels: Any, n: int, num_classes: int, where: str) -> torch.Tensor:
    return torch.from_numpy(class_indices(labels, n, num_classes, "labels", where))


def reliability_bins(probs: Any, labels: Any, n_bins: int = 10) -> pd.DataFrame:
    """One row per equal-width confidence bin: ``lower``, ``upper``, ``count``, ``confidence``
    (the mean probability of the predicted class) and ``accuracy`` (the share predicted right).

    Empty bins keep their row with ``count`` 0 and NaN confidence and accuracy, so every table
    has ``n_bins`` rows. A confidence of exactly 1 falls into the last bin.
    """
    where = "reliability_bins"
    n_bins = int_at_least(n_bins, "n_bins", 1, where=where)
    p = check_probabilities(probs, where)
    y = _labels(labels, len(p), p.shape[1], where)
    confidence, predicted = p.max(1)
    correct = (predicted == y).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    which = torch.clamp(torch.bucketize(confidence, edges[1:-1], right=True), max=n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = which == b
        count = int(inside.sum())
        rows.append({
            "lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count,
            "confidence": float(confidence[inside].mean()) if count else float("nan"),
            "accuracy": float(correct[inside].mean()) if count else float("nan"),
        })
    return pd.DataFrame(rows)


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 10) -> float:
    """The bins' ``|accuracy - confidence|``, weighted by the share of predictions in each bin."""
    bins = reliability_bins(probs, labels, n_bins)
    used = bins[bins["count"] > 0]
    weights = used["count"] / used["count"].sum()
    return float((weights * (used["accuracy"] - used["confidence"]).abs()).sum())


def logits_from_probs(probs: Any) -> torch.Tensor:
    """``log p`` (clipped at :data:`SMALLEST_PROBABILITY`): logits whose softmax is ``p``."""
    return check_probabilities(probs, "logits_from_probs").clamp_min(SMALLEST_PROBABILITY).log()


def apply_temperature(logits: Any, temperature: float) -> torch.Tensor:
    """``softmax(logits / temperature)``: the class ranking stays, the confidence changes."""
    temperature = positive_number(temperature, "temperature", where="apply_temperature")
    z = torch.as_tensor(logits).double()
    if z.ndim != 2:
        raise InvalidParameterError(f"apply_temperature: logits must have shape (images, classes), got {tuple(z.shape)}.")
    return (z / temperature).softmax(1)


def fit_temperature(logits: Any, labels: Any, *, max_iter: int = 200) -> float:
    """The temperature ``T > 0`` that minimises the cross-entropy of ``softmax(logits / T)``.

    Fit it on validation predictions, never on the test images you report. One parameter,
    fitted by L-BFGS on ``log T`` (so ``T`` stays positive) from ``T = 1``.
    """
    where = "fit_temperature"
    z = torch.as_tensor(logits).double()
    if z.ndim != 2 or len(z) == 0 or not torch.isfinite(z).all():
        raise InvalidParameterError(
            f"{where}: logits must be a finite (images, classes) tensor, got shape {tuple(z.shape)}. "
            "From probabilities, use logits_from_probs(probs)."
        )
    y = _labels(labels, len(z), z.shape[1], where)
    if len(torch.unique(y)) < 2:
        raise InvalidParameterError(f"{where}: the validation labels hold one class only; a temperature needs both kinds of answers.")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=int_at_least(max_iter, "max_iter", 1, where=where),
                                  line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        value.backward()
        return value

    optimizer.step(loss)
    return float(log_t.detach().exp())


__all__ = [
    "SMALLEST_PROBABILITY",
    "apply_temperature",
    "check_probabilities",
    "expected_calibration_error",
    "fit_temperature",
    "logits_from_probs",
    "reliability_bins",
]
