"""History: the per-epoch records of a real fit, summarised and as a DataFrame."""
from __future__ import annotations

import pytest

from tlcourse.errors import CourseError
from tlcourse.train import History, fit


def test_history_summary_and_frame(features, new_head):
    h = fit(new_head(), features, features, epochs=2, progress=False, label="demo")
    assert isinstance(h, History) and "best epoch" in repr(h)
    frame = h.to_frame()
    assert list(frame.index) == [1, 2] and {"train_loss", "val_acc", "lr"} <= set(frame.columns)
    assert h.metric("val_loss") == list(frame["val_loss"]) and h.seconds > 0


def test_an_empty_history_says_why_it_has_no_best():
    h = History(label="never ran")
    assert repr(h) == "History(empty)" and len(h) == 0 and h.to_frame().empty
    with pytest.raises(CourseError, match="stopped before its first epoch ended"):
        h.best
