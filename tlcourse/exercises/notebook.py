"""The notebook API: :class:`Exercises`, one bank of questions for one learner.

::

    from tlcourse.exercises import Exercises
    ex = Exercises.load("03_freezing", learner=learner, answers=answers)
    ex.ask("q1")                       # shows the question (widgets in JupyterLab, text headless)
    ex.check_code("q5", model=model)   # runs the bank's checker on your objects
    ex.score()                         # how far you got (all sessions)

Two ways of running, detected once at load:

- **interactive** (inside a Jupyter kernel): ipywidgets with instant feedback;
- **headless** (``TLCOURSE_HEADLESS=1``, which ``tlcourse run`` sets, or plain Python without a
  kernel): never waits for input. Questions print as text; answers come from the ``answers``
  dict (a papermill parameter, ``{question_id: answer}``), are checked, printed and recorded.

Every checked answer is appended to the learner's progress file
(:mod:`tlcourse.exercises.progress`).
"""
from __future__ import annotations

import html
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._env import EXAM_ENV, HEADLESS_ENV, env_flag
from ..errors import CourseError, InvalidParameterError
from .bank import Bank, Question, find_bank, load_bank
from .checkers import get_checker
from .feedback import Feedback, feedback_html
from .progress import (
    append_entry,
    default_learner,
    json_safe,
    make_entry,
    parse_time,
    progress_path,
    read_entries,
)
from .widgets import QuestionWidget

_NO_ANSWER = object()


def in_kernel() -> bool:
    """Whether this code runs inside a Jupyter kernel (where widgets can render)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def is_headless() -> bool:
    """``TLCOURSE_HEADLESS=1`` (set by the course runner), or no kernel to draw widgets in."""
    return env_flag(HEADLESS_ENV) or not in_kernel()


def is_exam() -> bool:
    """``TLCOURSE_EXAM=1``: solutions cannot be revealed."""
    return env_flag(EXAM_ENV)


def _blank(answer: Any) -> bool:
    if answer is None or answer is _NO_ANSWER:
        return True
    if isinstance(answer, str):
        return not answer.strip()
    if isinstance(answer, (list, tuple, set, frozenset)):
        return len(answer) == 0
    return False


def _describe(value: Any) -> Any:
    """How a learner's object is stored in the progress file: small values as is, else the type."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return json_safe(value)
    if isinstance(value, (list, tuple)) and len(value) <= 20 and all(
        v is None or isinstance(v, (bool, int, float, str)) for v in value
    ):
        return json_safe(value)
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


@dataclass(frozen=True)
class Score:
    """A learner's standing on one bank, across every session recorded in the progress file.

    ``per_question`` maps each question id to ``True`` / ``False`` (latest attempt) or ``None``
    (not tried yet).
    """

    learner: str
    bank: str
    total: int
    answered: int
    correct: int
    first_try: int
    per_question: dict[str, bool | None] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def __str__(self) -> str:
        marks = {True: "\u2713", False: "\u2717", None: "-"}
        cells = "  ".join(f"{q} {marks[v]}" for q, v in self.per_question.items())
        return (
            f"{self.learner} on {self.bank}: {self.correct} of {self.total} right "
            f"({self.answered} answered, {self.first_try} at the first try)\n{cells}"
        )

    def _repr_html_(self) -> str:
        marks = {True: "&#10003;", False: "&#10007;", None: "&ndash;"}
        cells = "".join(
            f"<td style='text-align:center'>{html.escape(q)}<br>{marks[v]}</td>"
            for q, v in self.per_question.items()
        )
        return (
            f"<b>{html.escape(self.learner)}</b> on <b>{html.escape(self.bank)}</b>: "
            f"{self.correct} of {self.total} right ({self.answered} answered, "
            f"{self.first_try} at the first try)<table><tr>{cells}</tr></table>"
        )


class Exercises:
    """One bank's questions for one learner: ask, check, record, score.

    Parameters
    ----------
    bank: a loaded :class:`~tlcourse.exercises.bank.Bank` (use :meth:`load` for a name or path).
    learner: whose answers these are (default ``TLCOURSE_LEARNER`` or the login name).
    answers: ``{question_id: answer}``, the papermill parameter that answers questions headless.
    exam: hide solutions (default ``TLCOURSE_EXAM``).
    headless: force text mode on or off (default: detected, see :func:`is_headless`).
    progress: the progress file (default ``TLCOURSE_PROGRESS``, else ``<cache>/progress/<learner>.json``).
    """

    def __init__(
        self,
        bank: Bank,
        learner: str | None = None,
        answers: Mapping[str, Any] | None = None,
        exam: bool | None = None,
        headless: bool | None = None,
        progress: str | os.PathLike[str] | None = None,
    ) -> None:
        self.bank = bank
        self.learner = str(learner).strip() if learner and str(learner).strip() else default_learner()
        self.exam = is_exam() if exam is None else bool(exam)
        self.headless = is_headless() if headless is None else bool(headless)
        self.progress_file = progress_path(self.learner, progress)
        self.answers = self._check_answers(answers)
        self._latest: dict[str, Feedback] = {}
        self._widgets: dict[str, QuestionWidget] = {}
        # Read the progress file now: a corrupt one should stop the notebook at the top, not
        # after the learner has worked through half of it.
        read_entries(self.progress_file)

    @classmethod
    def load(
        cls,
        bank: str | os.PathLike[str],
        *,
        learner: str | None = None,
        answers: Mapping[str, Any] | None = None,
        exam: bool | None = None,
        headless: bool | None = None,
        progress: str | os.PathLike[str] | None = None,
    ) -> "Exercises":
        """Load a bank by name (``"03_freezing"``, from ``exercises/banks/``) or path."""
        return cls(
            load_bank(find_bank(bank)),
            learner=learner,
            answers=answers,
            exam=exam,
            headless=headless,
            progress=progress,
        )

    def _check_answers(self, answers: Mapping[str, Any] | None) -> dict[str, Any]:
        if answers is None:
            return {}
        if not isinstance(answers, Mapping):
            raise InvalidParameterError(
                f"answers must be a dict {{question_id: answer}}, got a {type(answers).__name__}."
            )
        out: dict[str, Any] = {}
        for key, value in answers.items():
            qid = str(key)
            q = self.bank[qid]  # unknown ids: an error listing the bank's questions
            if q.kind == "code":
                raise InvalidParameterError(
                    f"answers[{qid!r}]: {qid} is a code exercise; write the code and run "
                    f"ex.check_code({qid!r}, ...) instead of giving an answer."
                )
            out[qid] = value
        return out

    # ------------------------------------------------------------------ looking at questions

    @property
    def ids(self) -> list[str]:
        return self.bank.ids

    def __len__(self) -> int:
        return len(self.bank)

    def __repr__(self) -> str:
        mode = "headless" if self.headless else "widgets"
        exam = ", exam" if self.exam else ""
        return f"Exercises({self.bank.id!r}, learner={self.learner!r}, {len(self)} questions, {mode}{exam})"

    def question(self, qid: str) -> Question:
        return self.bank[qid]

    def feedback(self, qid: str) -> Feedback | None:
        """The latest feedback for ``qid`` in this session (``None`` before any check)."""
        self.bank[qid]
        return self._latest.get(qid)

    # ------------------------------------------------------------------ showing

    def _show(self, text: str, html_text: str | None = None) -> None:
        if self.headless:
            print(text)
            return
        from IPython.display import HTML, display

        display(HTML(html_text if html_text is not None else f"<pre>{html.escape(text)}</pre>"))

    def _feedback_text(self, q: Question, fb: Feedback) -> str:
        lines = [str(fb)]
        if fb.correct and q.explanation:
            lines.append(q.explanation)
        if not fb.correct and q.hint:
            lines.append(f"(a hint: ex.hint({q.id!r}))")
        return "\n".join(lines)

    def _show_feedback(self, q: Question, fb: Feedback) -> None:
        extra = q.explanation if fb.correct else ""
        self._show(self._feedback_text(q, fb), feedback_html(fb, extra))
        widget = self._widgets.get(q.id)
        if widget is not None:
            widget.show(fb)

    def widget(self, qid: str) -> QuestionWidget:
        """The :class:`~tlcourse.exercises.widgets.QuestionWidget` of ``qid`` (built once)."""
        q = self.bank[qid]
        if qid not in self._widgets:
            self._widgets[qid] = QuestionWidget(self, q)
        return self._widgets[qid]

    def ask(self, qid: str) -> None:
        """Show question ``qid``; if ``answers`` holds an answer for it, check and record it."""
        q = self.bank[qid]
        given = self.answers.get(qid, _NO_ANSWER)
        if not self.headless:
            w = self.widget(qid)
            from IPython.display import display

            display(w.box)
            if not _blank(given) and q.kind != "code":
                w.set_answer(given)
                w.show(self.grade(qid, given))
            return
        print(q.as_text())
        if q.kind == "code":
            return
        if _blank(given):
            print(f"  (no answer yet: add {qid!r}: ... to the answers dict)")
            return
        fb = self.grade(qid, given)
        print(f"  your answer: {given!r}")
        print("  " + self._feedback_text(q, fb).replace("\n", "\n  "))

    def ask_all(self) -> None:
        """Every question of the bank, in order."""
        for qid in self.ids:
            self.ask(qid)

    def hint(self, qid: str) -> None:
        q = self.bank[qid]
        self._show(f"Hint for {qid}: {q.hint or 'no hint for this one.'}")

    def solution(self, qid: str) -> None:
        """Show the answer and explanation (refused in exam mode)."""
        q = self.bank[qid]
        if self.exam:
            self._show("Solutions are hidden in exam mode.")
            return
        self._show(f"Solution to {qid}: {q.solution_text()}" + (f"\n{q.explanation}" if q.explanation else ""))

    # ------------------------------------------------------------------ checking

    def grade(self, qid: str, answer: Any = _NO_ANSWER, **objects: Any) -> Feedback:
        """Check an answer (or, for code exercises, the learner's objects) and record it.

        Returns the :class:`Feedback` without showing it: :meth:`check` and :meth:`check_code`
        are the showing versions. A blank answer is not an attempt: it is neither graded nor
        recorded.
        """
        q = self.bank[qid]
        if q.kind == "code":
            if answer is not _NO_ANSWER:
                raise InvalidParameterError(
                    f"{qid} is a code exercise: pass your objects by name, e.g. "
                    f"ex.check_code({qid!r}, {', '.join(a + '=...' for a in q.learner_args)})."
                )
            fb = self._run_checker(q, objects)
            recorded: Any = {k: _describe(v) for k, v in objects.items()}
        else:
            if objects:
                raise InvalidParameterError(
                    f"{qid} is a {q.kind} question: give the answer, ex.check({qid!r}, answer); "
                    f"got keyword argument(s) {', '.join(objects)}."
                )
            if _blank(answer):
                return Feedback(False, "No answer yet: choose or type one, then check.")
            fb = q.grade(answer)
            recorded = answer
        entry = make_entry(
            self.learner, self.bank.id, qid, recorded, fb, kind=q.kind, bank_questions=len(self.bank)
        )
        append_entry(self.progress_file, entry)
        self._latest[qid] = fb
        return fb

    def _run_checker(self, q: Question, objects: dict[str, Any]) -> Feedback:
        needed = q.learner_args
        missing = [a for a in needed if a not in objects]
        if missing:
            raise InvalidParameterError(
                f"ex.check_code({q.id!r}, ...) needs {', '.join(a + '=...' for a in needed)}; "
                f"missing {', '.join(missing)}."
            )
        clash = [k for k in objects if k in q.expected]
        if clash:
            raise InvalidParameterError(
                f"{', '.join(clash)} for {q.id} come(s) from the question bank; pass only "
                f"{', '.join(needed)}."
            )
        checker = get_checker(q.checker)
        params = inspect.signature(checker).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = [k for k in objects if k not in params]
            if unknown:
                raise InvalidParameterError(
                    f"ex.check_code({q.id!r}, ...) got unexpected {', '.join(unknown)}; it takes "
                    f"{', '.join(a + '=...' for a in needed)}."
                )
        try:
            return checker(**objects, **q.expected)
        except CourseError:
            raise
        except Exception as exc:  # a learner's odd object must give feedback, not a traceback
            return Feedback(False, f"The checker could not inspect your objects ({type(exc).__name__}: {exc}).")

    def check(self, qid: str, answer: Any) -> None:
        """Check ``answer`` to question ``qid``; show the feedback and record it."""
        q = self.bank[qid]
        fb = self.grade(qid, answer)
        self._show_feedback(q, fb)

    def check_code(self, qid: str, **objects: Any) -> None:
        """Run ``qid``'s checker on your objects (``model=model, optimizer=opt``); show and record."""
        q = self.bank[qid]
        if q.kind != "code":
            raise InvalidParameterError(
                f"{qid} is a {q.kind} question, not a code exercise: use ex.check({qid!r}, answer)."
            )
        fb = self.grade(qid, **objects)
        self._show_feedback(q, fb)

    # ------------------------------------------------------------------ scoring

    def score(self) -> Score:
        """Where this learner stands on this bank, from the progress file (all sessions)."""
        entries = [
            e
            for e in read_entries(self.progress_file)
            if str(e["learner"]) == self.learner and str(e["bank"]) == self.bank.id
        ]
        latest: dict[str, bool] = {}
        first: dict[str, bool] = {}
        for e in sorted(entries, key=lambda e: parse_time(e["time"])):
            first.setdefault(str(e["question"]), bool(e["correct"]))
            latest[str(e["question"])] = bool(e["correct"])
        per = {qid: latest.get(qid) for qid in self.ids}
        return Score(
            learner=self.learner,
            bank=self.bank.id,
            total=len(self.bank),
            answered=sum(v is not None for v in per.values()),
            correct=sum(bool(v) for v in per.values()),
            first_try=sum(first.get(q, False) for q in self.ids),
            per_question=per,
        )


def load(bank: str | os.PathLike[str], **kwargs: Any) -> Exercises:
    """Shorthand for :meth:`Exercises.load`."""
    return Exercises.load(bank, **kwargs)


__all__ = ["Exercises", "Score", "in_kernel", "is_exam", "is_headless", "load"]
