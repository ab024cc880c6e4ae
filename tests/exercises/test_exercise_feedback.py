"""Feedback: one small type for every check, shown the same way as text, HTML and a truth value."""
from __future__ import annotations

from tlcourse.exercises.feedback import Feedback, feedback_html


def test_feedback_is_its_verdict_and_prints_one_or_several_lines():
    right, wrong = Feedback(True, "Correct."), Feedback(False, "- stem is trainable\n- top is frozen")
    assert right and not wrong
    assert str(right) == "\u2713 Correct."
    assert str(wrong) == "\u2717\n- stem is trainable\n- top is frozen"


def test_feedback_html_escapes_the_message_and_the_explanation():
    fb = Feedback(False, "<script>x</script>\nnext line")
    html = feedback_html(fb, extra="a <b> tag")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<br>next line" in html
    assert "a &lt;b&gt; tag" in html and "#cf222e" in html
    assert fb._repr_html_() == feedback_html(fb)
    assert "#1a7f37" in feedback_html(Feedback(True, "ok"))
