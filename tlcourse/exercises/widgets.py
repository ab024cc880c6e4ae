"""The JupyterLab face of a question: ipywidgets with instant feedback.

One :class:`QuestionWidget` per question: the prompt, an input that fits the kind
(``RadioButtons`` for one right option, ``SelectMultiple`` for several, ``FloatText`` for a
number, ``Text`` for a short answer; none for code exercises, which are checked with
``ex.check_code``), and Check / Hint / Reveal-solution buttons. In exam mode the reveal button
is hidden *and* disabled, so it cannot be clicked from code either.

Widgets never wait for input, so a notebook that shows them still runs to the end under
papermill or nbval: they just display.

The dependency runs one way: :mod:`.notebook` builds widgets; a widget needs only something
that grades an answer and says whether this is an exam (:class:`Grader`), so this module never
imports the notebook API.
"""
from __future__ import annotations

import html
from typing import Any, Protocol

from ..errors import CourseError
from .bank import Question
from .feedback import Feedback, feedback_html


class Grader(Protocol):
    """What a widget needs from :class:`~tlcourse.exercises.Exercises`: grading (which also
    records the attempt) and whether solutions are hidden."""

    exam: bool

    def grade(self, qid: str, answer: Any) -> Feedback: ...


def _note(text: str, colour: str = "#57606a") -> str:
    body = html.escape(text).replace("\n", "<br>")
    return f'<div style="color:{colour}">{body}</div>'


class QuestionWidget:
    """The widgets of one question, wired to a :class:`Grader` (an :class:`~tlcourse.exercises.Exercises`).

    Attributes are public so tests (and curious learners) can drive them: set
    ``input.value`` and call ``check_button.click()``, then read ``feedback.value``.
    """

    def __init__(self, exercises: Grader, question: Question) -> None:
        import ipywidgets as w

        self.exercises = exercises
        self.question = question
        q = question
        self.prompt = w.HTML(
            f"<b>[{html.escape(q.id)}]</b> {html.escape(q.prompt).replace(chr(10), '<br>')} "
            f"<i>({html.escape(q.instructions())})</i>"
        )
        self.input: Any = None
        layout = w.Layout(width="auto")
        if q.kind == "choice":
            pairs = list(zip(q.labelled_options(), q.options))
            if q.multiple:
                self.input = w.SelectMultiple(options=pairs, value=(), rows=len(pairs), layout=layout)
            else:
                self.input = w.RadioButtons(options=pairs, value=None, layout=layout)
        elif q.kind == "numeric":
            self.input = w.FloatText(value=0.0, description=q.unit or "")
        elif q.kind == "text":
            self.input = w.Text(value="", placeholder="your answer")
        self.check_button = None
        if self.input is not None:
            self.check_button = w.Button(description="Check", button_style="primary", icon="check")
            self.check_button.on_click(self._on_check)
        self.hint_button = w.Button(description="Hint", icon="lightbulb-o", disabled=not q.hint)
        if not q.hint:
            self.hint_button.layout.display = "none"
        self.hint_button.on_click(self._on_hint)
        self.reveal_button = w.Button(description="Reveal solution", button_style="warning", icon="eye")
        if exercises.exam:
            self.reveal_button.disabled = True
            self.reveal_button.layout.display = "none"
        self.reveal_button.on_click(self._on_reveal)
        self.feedback = w.HTML("")
        self.extra = w.HTML("")
        buttons = [b for b in (self.check_button, self.hint_button, self.reveal_button) if b is not None]
        parts = [self.prompt] + ([self.input] if self.input is not None else [])
        self.box = w.VBox(parts + [w.HBox(buttons), self.feedback, self.extra])

    # ------------------------------------------------------------------ answer in, feedback out

    @property
    def answer(self) -> Any:
        """The learner's current answer (a tuple for several options, ``None`` if none chosen)."""
        if self.input is None:
            return None
        value = self.input.value
        return tuple(value) if isinstance(value, (tuple, list)) else value

    def set_answer(self, answer: Any) -> None:
        """Put ``answer`` (as written in an ``answers`` dict) into the input."""
        q = self.question
        if self.input is None:
            raise CourseError(f"Question {q.id!r} is a code exercise; it has no input to fill.")
        if q.kind == "choice":
            if q.multiple:
                picks = [answer] if isinstance(answer, str) else list(answer or ())
                resolved = [q.resolve_option(p) for p in picks]
                self.input.value = tuple(r for r in resolved if r is not None)
            else:
                self.input.value = q.resolve_option(answer)
        elif q.kind == "numeric":
            try:
                self.input.value = float(answer)
            except (TypeError, ValueError):
                self.input.value = 0.0
        else:
            self.input.value = "" if answer is None else str(answer)

    def show(self, feedback: Feedback) -> None:
        """Show ``feedback`` (with the explanation once the answer is right)."""
        extra = self.question.explanation if feedback.correct else ""
        self.feedback.value = feedback_html(feedback, extra)

    def _on_check(self, _button: Any = None) -> None:
        try:
            fb = self.exercises.grade(self.question.id, self.answer)
        except CourseError as exc:  # e.g. a corrupt progress file: say so where the learner looks
            self.feedback.value = _note(str(exc), "#cf222e")
            return
        self.show(fb)

    def _on_hint(self, _button: Any = None) -> None:
        self.extra.value = _note("Hint: " + (self.question.hint or "no hint for this one."))

    def _on_reveal(self, _button: Any = None) -> None:
        if self.exercises.exam:
            self.extra.value = _note("Solutions are hidden in exam mode.")
            return
        q = self.question
        text = q.solution_text() + (f"\n{q.explanation}" if q.explanation else "")
        self.extra.value = _note(text, "#9a6700")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)
