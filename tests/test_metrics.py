"""tlcourse.metrics: confusion counts agree with counting by hand, keep their square shape on
edge cases (no images, one class, absent classes) and explain bad class indices."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from tlcourse.errors import InvalidParameterError
from tlcourse.metrics import class_indices, confusion_counts


def test_counts_match_counting_by_hand():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, size=200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 6, size=200))
    by_hand = np.zeros((7, 7), dtype=np.int64)  # class 6 never occurs: its row and column stay 0
    for t, p in zip(y_true, y_pred):
        by_hand[t, p] += 1
    counts = confusion_counts(torch.from_numpy(y_true), list(y_pred), 7)
    assert counts.dtype == np.int64 and counts.shape == (7, 7)
    assert np.array_equal(counts, by_hand)


def test_edge_cases_keep_the_square_shape_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn warns on a 1x1 matrix; the course asked for it
        empty = confusion_counts([], [], 3)
        one_class = confusion_counts([0, 0, 0], [0, 0, 0], 1)
    assert empty.shape == (3, 3) and empty.sum() == 0 and empty.dtype == np.int64
    assert one_class.tolist() == [[3]]


def test_bad_inputs_are_explained():
    with pytest.raises(InvalidParameterError, match=r"confusion_counts: y_true contains class index 5, outside 0..4"):
        confusion_counts([0, 5], [0, 1], 5)
    with pytest.raises(InvalidParameterError, match="y_pred has 3 entries but there are 2"):
        confusion_counts([0, 1], [0, 1, 1], 5)
    for bad in (0, True, 3.0):
        with pytest.raises(InvalidParameterError) as info:
            confusion_counts([0], [0], bad)
        assert str(info.value) == f"confusion_counts: num_classes must be an integer >= 1, got {bad!r}."
    assert confusion_counts([0, 1], [1, 1], np.int64(2)).tolist() == [[0, 1], [0, 1]]  # e.g. from labels.max() + 1
    with pytest.raises(InvalidParameterError, match="argmax"):
        class_indices(np.zeros((2, 3)), None, 3, "labels", "here")
    with pytest.raises(InvalidParameterError, match="integer class indices"):
        class_indices([0.5, 1.0], None, 3, "labels", "here")
    assert class_indices(torch.tensor([[1.0], [2.0]]), 2, 3, "labels", "here").tolist() == [1, 2]
