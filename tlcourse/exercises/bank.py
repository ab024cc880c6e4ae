"""Question banks: YAML data files, validated on load, and the grading of each question kind.

A bank is ``exercises/banks/<notebook-stem>.yaml``: a list of questions (or a mapping with a
``title`` and ``questions``). Banks are data written by lesson authors, so loading one checks
*everything* (unknown kinds, answers that are not among the options, duplicate ids, checkers
that do not exist, misspelt keys) and reports all problems at once, naming the file and the
question. The schema is documented in ``exercises/README.md``.

Kinds:

- ``choice``: options; ``answer`` (one right option, radio buttons) or ``answers`` (several).
- ``numeric``: a number ``answer`` with an absolute ``tolerance`` and/or ``rel_tolerance``.
- ``text``: short free text; ``accepted`` forms (and ``answer``), compared ignoring case and
  runs of whitespace.
- ``code``: the learner writes code; ``checker`` (a name registered in
  :mod:`tlcourse.exercises.checkers`, written alone: ``checker: trainable_stages``) inspects the
  resulting objects with the bank's ``expected`` keyword arguments. A module path
  (``pkg.module:function``) is refused: a data file must not choose what gets imported.
"""
from __future__ import annotations

import inspect
import os
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import is_number
from .._yaml import SafeLoader, load_file
from ..errors import CourseError
from .checkers import CHECKERS, get_checker, module_path_problem
from .checkers.common import value_close
from .feedback import Feedback

KINDS = ("choice", "numeric", "text", "code")
_COMMON = {"id", "kind", "prompt", "hint", "explanation"}
ALLOWED_KEYS: dict[str, set[str]] = {
    "choice": _COMMON | {"options", "answer", "answers"},
    "numeric": _COMMON | {"answer", "tolerance", "rel_tolerance", "unit"},
    "text": _COMMON | {"answer", "accepted"},
    "code": _COMMON | {"checker", "expected", "solution"},
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class BankError(CourseError):
    """A question bank file is malformed; the message lists every problem found."""


def normalise(text: Any) -> str:
    """Case-folded, with runs of whitespace collapsed: how free-text answers are compared."""
    return " ".join(str(text).split()).casefold()


# --------------------------------------------------------------------------- YAML loading


class _BankLoader(SafeLoader):
    """The course's YAML loader (duplicate keys refused), reading ``1e-3`` as a float.

    PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is a *string*: a learning rate written
    that way would silently never match. A duplicated ``answer:`` key would silently keep
    the last one; :class:`tlcourse._yaml.SafeLoader` refuses it.
    """


_BankLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# --------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class Question:
    """One validated question. Build banks from YAML with :func:`load_bank`, not by hand."""

    id: str
    kind: str
    prompt: str
    options: tuple[str, ...] = ()
    answer: Any = None
    answers: tuple[str, ...] = ()
    tolerance: float = 0.0
    rel_tolerance: float = 0.0
    unit: str = ""
    accepted: tuple[str, ...] = ()
    hint: str = ""
    explanation: str = ""
    checker: str = ""
    expected: Mapping[str, Any] = field(default_factory=dict)
    solution: str = ""

    @property
    def multiple(self) -> bool:
        """A choice question with several right options."""
        return self.kind == "choice" and bool(self.answers)

    @property
    def learner_args(self) -> list[str]:
        """For code questions: the objects the learner must pass to ``check_code``."""
        if self.kind != "code":
            return []
        sig = inspect.signature(get_checker(self.checker))
        return [
            name
            for name, p in sig.parameters.items()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and name not in self.expected
        ]

    def labelled_options(self) -> list[str]:
        return [f"{_LETTERS[i]}) {opt}" for i, opt in enumerate(self.options)]

    def instructions(self) -> str:
        """What kind of answer is expected, in words."""
        if self.kind == "choice":
            return "choose all that apply" if self.multiple else "choose one"
        if self.kind == "numeric":
            return f"a number{f' in {self.unit}' if self.unit else ''}"
        if self.kind == "text":
            return "a short answer"
        args = ", ".join(f"{a}=..." for a in self.learner_args)
        return f"write the code, then run ex.check_code({self.id!r}, {args})"

    def as_text(self) -> str:
        """The question as plain text (headless runs print this)."""
        lines = [f"[{self.id}] {self.prompt}  ({self.instructions()})"]
        lines += [f"    {o}" for o in self.labelled_options()]
        return "\n".join(lines)

    def resolve_option(self, answer: Any) -> str | None:
        """The option an answer names: its text (any case/spacing) or its letter (``b``, ``b)``)."""
        if answer is None or isinstance(answer, bool):
            return None
        key = normalise(answer)
        for opt in self.options:
            if normalise(opt) == key:
                return opt
        letter = key.rstrip(")").strip()
        if len(letter) == 1 and letter in _LETTERS[: len(self.options)]:
            return self.options[_LETTERS.index(letter)]
        return None

    def solution_text(self) -> str:
        """The right answer in words (what "Reveal solution" shows)."""
        if self.kind == "choice":
            right = self.answers if self.multiple else (self.answer,)
            labels = [f"{_LETTERS[self.options.index(a)]}) {a}" for a in right]
            return "Answer: " + "; ".join(labels)
        if self.kind == "numeric":
            tol = []
            if self.tolerance:
                tol.append(f"\u00b1{self.tolerance:g}")
            if self.rel_tolerance:
                tol.append(f"\u00b1{100 * self.rel_tolerance:g}%")
            unit = f" {self.unit}" if self.unit else ""
            return f"Answer: {self.answer:g}{unit}" + (f" ({' or '.join(tol)} accepted)" if tol else "")
        if self.kind == "text":
            forms = list(dict.fromkeys(([self.answer] if self.answer else []) + list(self.accepted)))
            return "Answer: " + " / ".join(str(f) for f in forms)
        return self.solution or "See the solution notebook in exercises/solutions/."

    def grade(self, answer: Any) -> Feedback:
        """Grade a learner's answer to a choice, numeric or text question."""
        if self.kind == "choice":
            return self._grade_choice(answer)
        if self.kind == "numeric":
            try:
                value = float(str(answer).strip()) if isinstance(answer, str) else answer
            except ValueError:
                return Feedback(False, f"{answer!r} is not a number.")
            return value_close(value, self.answer, rel_tol=self.rel_tolerance, abs_tol=self.tolerance)
        if self.kind == "text":
            forms = {normalise(f) for f in self.accepted}
            if self.answer is not None:
                forms.add(normalise(self.answer))
            if normalise(answer) in forms:
                return Feedback(True, "Correct.")
            return Feedback(False, f"{str(answer).strip()!r} is not an accepted answer.")
        raise CourseError(
            f"Question {self.id!r} is a code exercise: run your code, then "
            f"ex.check_code({self.id!r}, {', '.join(a + '=...' for a in self.learner_args)})."
        )

    def _grade_choice(self, answer: Any) -> Feedback:
        labels = ", ".join(self.labelled_options())
        if not self.multiple:
            chosen = self.resolve_option(answer)
            if chosen is None:
                return Feedback(False, f"{answer!r} is not one of the options ({labels}).")
            if chosen == self.answer:
                return Feedback(True, "Correct.")
            return Feedback(False, f"{_LETTERS[self.options.index(chosen)]}) {chosen!r} is not the answer.")
        picks = [answer] if isinstance(answer, str) else list(answer or ())
        chosen_set: set[str] = set()
        for pick in picks:
            opt = self.resolve_option(pick)
            if opt is None:
                return Feedback(False, f"{pick!r} is not one of the options ({labels}).")
            chosen_set.add(opt)
        right = set(self.answers)
        if chosen_set == right:
            return Feedback(True, "Correct.")
        hits, wrong = len(chosen_set & right), len(chosen_set - right)
        msg = f"You chose {hits} of the {len(right)} right options"
        if wrong:
            msg += f" and {wrong} wrong one" + ("s" if wrong > 1 else "")
        return Feedback(False, msg + ".")


# --------------------------------------------------------------------------- banks


@dataclass(frozen=True)
class Bank:
    """A validated question bank. ``id`` is the file stem: the notebook it belongs to."""

    id: str
    questions: "OrderedDict[str, Question]"
    title: str = ""
    path: Path | None = None

    def __getitem__(self, qid: str) -> Question:
        if qid not in self.questions:
            raise CourseError(
                f"Bank {self.id!r} has no question {qid!r}. Its questions: {', '.join(self.questions)}."
            )
        return self.questions[qid]

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions.values())

    def __len__(self) -> int:
        return len(self.questions)

    @property
    def ids(self) -> list[str]:
        return list(self.questions)


def _option_text(v: Any, problems: list[str], where: str) -> str:
    if isinstance(v, bool) or v is None:
        problems.append(
            f"{where}: option {v!r} is not text (YAML reads yes/no/on/off/null as booleans or "
            "nothing: put it in quotes)."
        )
        return str(v)
    if isinstance(v, (str, int, float)):
        return str(v).strip()
    problems.append(f"{where}: option {v!r} must be text, got a {type(v).__name__}.")
    return str(v)


def _text(q: Mapping, key: str, problems: list[str], where: str, required: bool = False) -> str:
    v = q.get(key)
    if v is None:
        if required:
            problems.append(f"{where}: missing {key!r}.")
        return ""
    if not isinstance(v, str):
        problems.append(f"{where}: {key!r} must be text, got {v!r}.")
        return str(v)
    return v.strip()


def _parse_question(q: Any, where: str, problems: list[str]) -> Question | None:
    if not isinstance(q, Mapping):
        problems.append(f"{where}: a question must be a mapping (id: ..., kind: ...), got {q!r}.")
        return None
    n_before = len(problems)
    qid = q.get("id")
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or not _ID.match(str(qid)):
        problems.append(f"{where}: 'id' must be a short name of letters, digits, '_', '.', '-', got {qid!r}.")
    qid = str(qid)
    kind = q.get("kind")
    if kind not in KINDS:
        problems.append(f"{where}: unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}.")
        return None
    unknown = sorted(set(map(str, q)) - ALLOWED_KEYS[kind])
    if unknown:
        problems.append(
            f"{where}: unknown key(s) {', '.join(unknown)} for kind {kind!r}; allowed: "
            f"{', '.join(sorted(ALLOWED_KEYS[kind]))}."
        )
    fields: dict[str, Any] = {
        "id": qid,
        "kind": kind,
        "prompt": _text(q, "prompt", problems, where, required=True),
        "hint": _text(q, "hint", problems, where),
        "explanation": _text(q, "explanation", problems, where),
    }
    if kind == "choice":
        raw = q.get("options")
        if not isinstance(raw, list) or len(raw) < 2:
            problems.append(f"{where}: 'options' must be a list of at least two choices, got {raw!r}.")
            return None
        if len(raw) > len(_LETTERS):
            problems.append(f"{where}: at most {len(_LETTERS)} options.")
        options = tuple(_option_text(o, problems, where) for o in raw)
        seen: dict[str, str] = {}
        for o in options:
            if normalise(o) in seen:
                problems.append(f"{where}: option {o!r} appears twice (ignoring case and spaces).")
            seen[normalise(o)] = o
        fields["options"] = options
        has_one, has_many = "answer" in q, "answers" in q
        if has_one == has_many:
            problems.append(f"{where}: give exactly one of 'answer' (one right option) or 'answers' (a list).")
        elif has_one:
            ans = _option_text(q["answer"], problems, where)
            if normalise(ans) not in seen:
                problems.append(f"{where}: answer {ans!r} is not among the options {list(options)}.")
            else:
                fields["answer"] = seen[normalise(ans)]
        else:
            raw_answers = q["answers"]
            if not isinstance(raw_answers, list) or not raw_answers:
                problems.append(f"{where}: 'answers' must be a non-empty list of options, got {raw_answers!r}.")
            else:
                answers = []
                for a in raw_answers:
                    text = _option_text(a, problems, where)
                    if normalise(text) not in seen:
                        problems.append(f"{where}: answer {text!r} is not among the options {list(options)}.")
                    elif seen[normalise(text)] in answers:
                        problems.append(f"{where}: answer {text!r} is listed twice.")
                    else:
                        answers.append(seen[normalise(text)])
                fields["answers"] = tuple(answers)
    elif kind == "numeric":
        ans = q.get("answer")
        if not is_number(ans):
            problems.append(f"{where}: a numeric question needs a number 'answer', got {ans!r}.")
        else:
            fields["answer"] = float(ans)
        for key in ("tolerance", "rel_tolerance"):
            v = q.get(key, 0.0)
            if not is_number(v) or v < 0:
                problems.append(f"{where}: {key!r} must be a number >= 0, got {v!r}.")
            else:
                fields[key] = float(v)
        fields["unit"] = _text(q, "unit", problems, where)
    elif kind == "text":
        accepted = q.get("accepted", [])
        if isinstance(accepted, str):
            accepted = [accepted]
        if not isinstance(accepted, list) or not all(isinstance(a, (str, int, float)) for a in accepted):
            problems.append(f"{where}: 'accepted' must be a list of texts, got {accepted!r}.")
            accepted = []
        ans = q.get("answer")
        if ans is not None and not isinstance(ans, (str, int, float)):
            problems.append(f"{where}: 'answer' must be text, got {ans!r}.")
            ans = None
        if not accepted and ans is None:
            problems.append(f"{where}: a text question needs 'accepted' forms (or an 'answer').")
        fields["accepted"] = tuple(str(a).strip() for a in accepted)
        fields["answer"] = None if ans is None else str(ans).strip()
    else:  # code
        name = q.get("checker")
        if not isinstance(name, str) or name not in CHECKERS:
            why = module_path_problem(name) or (
                f"unknown checker {name!r}; registered checkers: {', '.join(sorted(CHECKERS))}."
            )
            problems.append(f"{where}: {why}")
            return None
        expected = q.get("expected", {}) or {}
        if not isinstance(expected, Mapping):
            problems.append(f"{where}: 'expected' must be a mapping of the checker's keyword arguments.")
            expected = {}
        params = inspect.signature(get_checker(name)).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        bad = [k for k in expected if k not in params and not takes_any]
        if bad:
            problems.append(
                f"{where}: checker {name!r} takes no argument(s) {', '.join(map(str, bad))}; its arguments: "
                f"{', '.join(params)}."
            )
        fields["checker"] = name
        fields["expected"] = dict(expected)
        fields["solution"] = _text(q, "solution", problems, where)
    if len(problems) > n_before:
        return None
    return Question(**fields)


def parse_bank(data: Any, bank_id: str, source: str = "<bank>", path: Path | None = None) -> Bank:
    """Validate parsed YAML ``data`` into a :class:`Bank`; raise :class:`BankError` listing all problems."""
    title = ""
    if isinstance(data, Mapping):
        unknown = sorted(set(map(str, data)) - {"title", "questions"})
        if unknown:
            raise BankError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; use 'title' and 'questions'.")
        title = str(data.get("title") or "")
        data = data.get("questions")
    if not isinstance(data, list) or not data:
        raise BankError(
            f"{source}: a bank is a non-empty list of questions (or a mapping with 'title' and "
            f"'questions'), got {type(data).__name__}. See exercises/README.md for the schema."
        )
    problems: list[str] = []
    questions: OrderedDict[str, Question] = OrderedDict()
    first_seen: dict[str, int] = {}
    for i, raw in enumerate(data, start=1):
        qid = raw.get("id") if isinstance(raw, Mapping) else None
        where = f"question {i}" + (f" (id {qid!r})" if qid is not None else "")
        q = _parse_question(raw, where, problems)
        key = str(qid)
        if qid is not None and key in first_seen:
            problems.append(f"{where}: duplicate id {key!r} (first used by question {first_seen[key]}).")
            continue
        if qid is not None:
            first_seen[key] = i
        if q is not None:
            questions[q.id] = q
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise BankError(
            f"{source}: {len(problems)} problem(s) in the question bank:\n{listing}\n"
            "Fix the YAML; the schema is in exercises/README.md."
        )
    return Bank(id=bank_id, questions=questions, title=title, path=path)


def load_bank(path: str | os.PathLike[str]) -> Bank:
    """Read and validate the bank file at ``path``; its id is the file stem."""
    path = Path(path)
    data = load_file(path, _BankLoader, error=BankError)
    return parse_bank(data, bank_id=path.stem, source=str(path), path=path)


# --------------------------------------------------------------------------- finding banks


def _package_repo() -> Path:
    return Path(__file__).resolve().parents[2]


def banks_dir() -> Path:
    """Where named banks live: ``TLCOURSE_BANKS``, else ``exercises/banks`` found from here.

    Notebooks run with their own folder as the working directory (``exercises/`` or
    ``notebooks/``), so the search walks up from the cwd; a repository checkout holding the
    package (an editable install) is the last resort.
    """
    env = os.environ.get("TLCOURSE_BANKS")
    if env:
        return Path(env).expanduser()
    here = Path.cwd()
    for d in (here, *here.parents):
        if d.name == "exercises" and (d / "banks").is_dir():
            return d / "banks"
        if (d / "exercises" / "banks").is_dir():
            return d / "exercises" / "banks"
    return _package_repo() / "exercises" / "banks"


def available_banks(directory: Path | None = None) -> list[str]:
    """Names of the banks in ``directory`` (default :func:`banks_dir`)."""
    d = directory or banks_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml")) + sorted(p.stem for p in d.glob("*.yml"))


def find_bank(name_or_path: str | os.PathLike[str]) -> Path:
    """The file of a bank given by name (``"03_freezing"``) or path."""
    text = os.fspath(name_or_path)
    candidate = Path(text).expanduser()
    looks_like_path = os.sep in text or "/" in text or candidate.suffix in (".yaml", ".yml")
    if looks_like_path or candidate.is_file():
        if candidate.is_file():
            return candidate
        raise BankError(f"No question bank file at {candidate}.")
    d = banks_dir()
    for suffix in (".yaml", ".yml"):
        if (d / f"{text}{suffix}").is_file():
            return d / f"{text}{suffix}"
    names = available_banks(d)
    listing = ", ".join(names) if names else "none"
    raise BankError(
        f"No question bank named {text!r} in {d} (available: {listing}). Give a bank name from "
        "that list or a path to a .yaml file; set TLCOURSE_BANKS to use another folder."
    )




def cli_validate(args: Any) -> int:
    """``tlcourse exercises validate [BANK...]``: load every bank (default: all), report problems."""
    names = list(getattr(args, "banks", None) or [])
    if not names:
        d = banks_dir()
        names = [str(p) for p in sorted(d.glob("*.y*ml"))]
        if not names:
            raise BankError(f"No question banks (*.yaml) in {d}.")
    failures = 0
    for name in names:
        try:
            bank = load_bank(find_bank(name))
        except BankError as exc:
            failures += 1
            print(exc)
            continue
        kinds = sorted({q.kind for q in bank})
        print(f"ok  {bank.id}: {len(bank)} questions ({', '.join(kinds)})")
    return 1 if failures else 0


__all__ = [
    "ALLOWED_KEYS",
    "cli_validate",
    "Bank",
    "BankError",
    "KINDS",
    "Question",
    "available_banks",
    "banks_dir",
    "find_bank",
    "load_bank",
    "normalise",
    "parse_bank",
]
