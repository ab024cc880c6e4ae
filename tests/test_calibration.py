"""tlcourse.calibration: reliability bins, ECE and temperature scaling, on hand-made and real predictions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tlcourse import calibration as cal
from tlcourse.errors import InvalidParameterError


def _two_class(p_positive) -> torch.Tensor:
    p = torch.as_tensor(p_positive, dtype=torch.float64)
    return torch.stack([1 - p, p], 1)


def test_bins_compare_confidence_with_accuracy():
    probs = _two_class([0.95, 0.95, 0.95, 0.95, 0.35, 0.35])  # confidence 0.95 (x4), 0.65 (x2)
    labels = torch.tensor([1, 1, 1, 0, 0, 1])  # 3 of 4 right at 0.95, 1 of 2 right at 0.65
    bins = cal.reliability_bins(probs, labels, n_bins=10)
    assert len(bins) == 10 and bins["count"].sum() == 6
    top = bins.iloc[9]
    assert top["count"] == 4 and top["confidence"] == pytest.approx(0.95) and top["accuracy"] == pytest.approx(0.75)
    mid = bins.iloc[6]
    assert mid["count"] == 2 and mid["confidence"] == pytest.approx(0.65) and mid["accuracy"] == pytest.approx(0.5)
    assert np.isnan(bins.iloc[0]["accuracy"])  # empty bins stay, with no made-up numbers
    # ECE = 4/6 * |0.75 - 0.95| + 2/6 * |0.5 - 0.65|
    assert cal.expected_calibration_error(probs, labels, 10) == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.15)


def test_a_confidence_of_one_lands_in_the_last_bin_and_perfect_calibration_scores_zero():
    probs = _two_class([1.0, 0.0])
    bins = cal.reliability_bins(probs, torch.tensor([1, 0]), n_bins=5)
    assert bins.iloc[4]["count"] == 2
    assert cal.expected_calibration_error(probs, [1, 0], 5) == 0.0


def test_bad_inputs_are_refused_with_the_fix():
    with pytest.raises(InvalidParameterError, match="logits"):
        cal.reliability_bins(torch.tensor([[2.0, -1.0]]), [0])
    with pytest.raises(InvalidParameterError, match="torch.stack"):
        cal.expected_calibration_error(torch.tensor([0.2, 0.9]), [0, 1])
    with pytest.raises(InvalidParameterError, match="class index 2"):
        cal.expected_calibration_error(_two_class([0.2]), [2])
    with pytest.raises(InvalidParameterError, match="n_bins"):
        cal.reliability_bins(_two_class([0.2]), [0], n_bins=0)
    with pytest.raises(InvalidParameterError, match="temperature"):
        cal.apply_temperature(torch.zeros(1, 2), 0.0)
    with pytest.raises(InvalidParameterError, match="one class"):
        cal.fit_temperature(torch.randn(4, 2), [1, 1, 1, 1])
    with pytest.raises(InvalidParameterError, match="logits_from_probs"):
        cal.fit_temperature(torch.tensor([[float("-inf"), 0.0]]), [0])


def test_temperature_recovers_a_known_overconfidence_and_keeps_the_ranking():
    gen = torch.Generator().manual_seed(0)
    honest = torch.randn(4000, 3, generator=gen, dtype=torch.float64) * 2
    labels = torch.multinomial(honest.softmax(1), 1, generator=gen)[:, 0]  # labels drawn from the honest model
    overconfident = honest * 3  # the same ranking, three times too sure
    t = cal.fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    before = cal.expected_calibration_error(overconfident.softmax(1), labels)
    after = cal.expected_calibration_error(cal.apply_temperature(overconfident, t), labels)
    assert after < before / 3
    assert torch.equal(cal.apply_temperature(overconfident, t).argmax(1), overconfident.argmax(1))


def test_log_probabilities_are_logits_even_for_a_saturated_probe():
    probs = _two_class([0.0, 0.3, 1.0])
    logits = cal.logits_from_probs(probs)
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits.softmax(1), probs, atol=1e-6)


def test_temperature_on_real_probe_predictions():
    """A probe on PneumoniaMNIST features: T fitted on validation lowers the ECE of the test images."""
    from tlcourse import experiments

    budget = experiments.Budget(image_size=32, test_images=120, device="cpu")
    run = experiments.run_strategy("linear_probe", "pneumoniamnist", 20, 0, budget, validation=True)
    assert run.val_probs.shape == (120, 2) and set(run.val_labels.tolist()) == {0, 1}
    t = cal.fit_temperature(cal.logits_from_probs(run.val_probs), run.val_labels)
    assert t > 1  # unregularised enough on 40 images to be overconfident
    scaled = cal.apply_temperature(cal.logits_from_probs(run.probs), t)
    assert cal.expected_calibration_error(scaled, run.labels) < cal.expected_calibration_error(run.probs, run.labels)
    assert torch.equal(scaled.argmax(1), run.probs.argmax(1))
