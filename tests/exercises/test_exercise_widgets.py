"""The widgets of a question: instant feedback, recording, exam mode, prefilled answers."""
from __future__ import annotations

import pytest

from tlcourse.exercises import read_entries

Q1_RIGHT = "only the new classification head"


# --------------------------------------------------------------------------- widgets


def test_widgets_give_instant_feedback_and_record(progress_file, load_exercises):
    ex = load_exercises(headless=False)
    w = ex.widget("q1")
    assert w.reveal_button.layout.display != "none" and not w.reveal_button.disabled
    w.check_button.click()  # nothing chosen yet
    assert "No answer yet" in w.feedback.value
    assert read_entries(progress_file) == []
    w.input.value = "every layer, from the first epoch"
    w.check_button.click()
    assert "\u2717" in w.feedback.value and "is not the answer" in w.feedback.value
    w.input.value = Q1_RIGHT
    w.check_button.click()
    assert "\u2713" in w.feedback.value and "The new head starts random" in w.feedback.value
    w.hint_button.click()
    assert "Which weights are random" in w.extra.value
    w.reveal_button.click()
    assert "Answer: b) only the new classification head" in w.extra.value
    assert [e["correct"] for e in read_entries(progress_file)] == [False, True]


@pytest.mark.parametrize(
    "qid, value, right",
    [
        ("q2", ("BatchNorm layers left in training mode", "calling model.train() before each epoch and nothing else"), True),
        ("q2", ("BatchNorm layers left in training mode",), False),
        ("q3", 3843.0, True),
        ("q4", 0.01, False),
        ("q5", "Batch Norm", True),
    ],
)
def test_each_widget_kind(qid, value, right, progress_file, load_exercises):
    import ipywidgets as widgets

    ex = load_exercises(headless=False)
    w = ex.widget(qid)
    kind = {"q2": widgets.SelectMultiple, "q3": widgets.FloatText, "q4": widgets.FloatText, "q5": widgets.Text}
    assert isinstance(w.input, kind[qid])
    w.input.value = value
    w.check_button.click()
    assert ("\u2713" in w.feedback.value) is right
    assert read_entries(progress_file)[-1]["correct"] is right


def test_exam_mode_hides_and_disables_reveal(load_exercises):
    ex = load_exercises(headless=False, exam=True)
    w = ex.widget("q3")
    assert w.reveal_button.disabled and w.reveal_button.layout.display == "none"
    w.reveal_button.click()  # disabled buttons can still be clicked from code: nothing leaks
    assert "3843" not in w.extra.value
    assert w.hint_button.layout.display != "none"
    assert ex.widget("q6").check_button is None and ex.widget("q6").input is None


def test_widget_mode_with_answers_prefills_and_checks(progress_file, load_exercises):
    ex = load_exercises(headless=False, answers={"q1": "b"})
    ex.ask("q1")  # outside a kernel display() just prints; it must not block
    w = ex.widget("q1")
    assert w.input.value == Q1_RIGHT and "\u2713" in w.feedback.value
    assert read_entries(progress_file)[0]["correct"] is True


def test_widget_reports_a_corrupt_progress_file_without_touching_it(progress_file, load_exercises):
    ex = load_exercises(headless=False)
    progress_file.parent.mkdir(parents=True, exist_ok=True)
    progress_file.write_text("{not json")
    w = ex.widget("q5")
    w.input.value = "bn"
    w.check_button.click()
    assert "is not valid JSON" in w.feedback.value and str(progress_file) in w.feedback.value
    assert progress_file.read_text() == "{not json"
