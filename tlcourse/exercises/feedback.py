"""The one result type every check returns: :class:`Feedback`.

Multiple-choice, numeric and text questions, and the code checkers of
:mod:`tlcourse.exercises.checkers`, all answer with ``Feedback(correct, message)``. Keeping a
single small type means the widgets, the headless printer and the progress file treat every
kind of question the same way.
"""
from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Feedback:
    """Whether an answer is right, and a message that names the mistake when it is not.

    ``bool(feedback)`` is ``feedback.correct``, so checkers can be combined with ``and``-style
    early returns.
    """

    correct: bool
    message: str

    def __bool__(self) -> bool:
        return bool(self.correct)

    @property
    def mark(self) -> str:
        return "\u2713" if self.correct else "\u2717"

    def __str__(self) -> str:
        sep = "\n" if "\n" in self.message else " "
        return f"{self.mark}{sep}{self.message}"

    def _repr_html_(self) -> str:
        return feedback_html(self)


def feedback_html(feedback: Feedback, extra: str = "") -> str:
    """Green or red HTML for a notebook; ``extra`` (already plain text) is added below."""
    colour = "#1a7f37" if feedback.correct else "#cf222e"
    body = html.escape(feedback.message).replace("\n", "<br>")
    more = f"<div>{html.escape(extra)}</div>" if extra else ""
    return (
        f'<div style="color:{colour}"><b>{feedback.mark}</b> {body}</div>{more}'
    )
