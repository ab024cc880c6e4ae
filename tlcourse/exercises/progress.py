"""Progress files: every checked answer, appended to a learner's JSON file, and their summaries.

One file per learner (``<cache>/progress/<learner>.json``, or ``TLCOURSE_PROGRESS``, or a
path given to :class:`~tlcourse.exercises.Exercises`) holds a list of attempts::

    {"format": "tlcourse-progress", "version": 1,
     "entries": [{"learner": "ana", "bank": "03_freezing", "question": "q1", "kind": "choice",
                  "answer": "b", "correct": true, "message": "Correct.",
                  "bank_questions": 8, "time": "2026-11-23T19:40:02+01:00"}, ...]}

Writes are atomic (temporary file in the same folder, then ``os.replace``) and read the
existing file first, so earlier entries are never lost; a file that does not parse, or whose
entries have a field of the wrong type (``"correct": "no"`` is not an answer marked right), is
*refused*, never overwritten: it may hold a term's work. ``tlcourse progress`` summarises one
learner per bank, or merges several learners' files into a class table (optionally CSV). The
files of a class come from learners' machines, so one that cannot be read is named and left
out while the table is still made for the others, and the CSV's text cells are written so a
spreadsheet never runs them as formulas.
"""
from __future__ import annotations

import contextlib
import getpass
import io
import json
import math
import os
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import atomic
from .._checks import is_int
from ..atomic import why_unwritable
from ..csvsafe import SafeWriter
from ..errors import CourseError
from ..paths import cache_dir
from .feedback import Feedback

FORMAT = "tlcourse-progress"
VERSION = 1
REQUIRED_KEYS = ("learner", "bank", "question", "correct", "time")


class ProgressError(CourseError):
    """A progress file cannot be read or written; the message names the file.

    ``path`` and ``reason`` (what is wrong with it, e.g. ``is not valid JSON (...)``) are kept
    apart too, so the class table can name a skipped file in one short line.
    """

    def __init__(self, message: str, path: Path | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


# --------------------------------------------------------------------------- locations


def default_learner() -> str:
    """``TLCOURSE_LEARNER``, else the login name: who is answering when no one is named."""
    name = os.environ.get("TLCOURSE_LEARNER")
    if name:
        return name
    try:
        return getpass.getuser() or "learner"
    except Exception:  # no login name (some containers): a fixed name keeps progress together
        return "learner"


def learner_slug(learner: str) -> str:
    """A file-name-safe form of a learner's name (the name itself is kept inside the file)."""
    slug = re.sub(r"[^\w.-]+", "_", str(learner), flags=re.UNICODE).strip("._")
    return slug or "learner"


def progress_path(learner: str | None = None, path: str | os.PathLike[str] | None = None) -> Path:
    """Where ``learner``'s progress goes: ``path``, else ``TLCOURSE_PROGRESS``, else the cache."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("TLCOURSE_PROGRESS")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "progress" / f"{learner_slug(learner or default_learner())}.json"


# --------------------------------------------------------------------------- reading and writing


def json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-serialisable stand-in for an answer: plain values as they are, others as a repr."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth < 4 and isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if depth < 4 and isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [json_safe(v, depth + 1) for v in items]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        with contextlib.suppress(Exception):
            return json_safe(item(), depth + 1)
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _refuse(path: Path, why: str) -> ProgressError:
    return ProgressError(
        f"Progress file {path} {why}. It was left untouched, so no earlier answer is lost. "
        "Move it aside (or repair it) and run again; a new file will be started.",
        path=path,
        reason=why,
    )


def _nonempty_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _iso_time(value: Any) -> bool:
    if not isinstance(value, str):  # fromisoformat would also take str(20260301)
        return False
    try:
        parse_time(value)
    except ValueError:
        return False
    return True


def _count_or_null(value: Any) -> bool:
    return value is None or (is_int(value) and value >= 0)


#: Every field the summaries read, with its test and what it must be. A progress file comes from
#: a learner's machine and may have been edited: ``"correct": "no"`` would count as right (a
#: non-empty string is truthy), a number as a learner's name would merge with another's.
FIELD_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learner": (_nonempty_text, "a non-empty text"),
    "bank": (_nonempty_text, "a non-empty text"),
    "question": (_nonempty_text, "a non-empty text"),
    "correct": (lambda v: isinstance(v, bool), "true or false"),
    "time": (_iso_time, "an ISO-8601 date and time such as \"2026-03-01T09:40:02+01:00\""),
    "kind": (lambda v: isinstance(v, str), "a text"),
    "message": (lambda v: isinstance(v, str), "a text"),
    "bank_questions": (_count_or_null, "a whole number of 0 or more, or null"),
}


def entry_problem(entry: Any) -> str | None:
    """What is wrong with one stored attempt (a missing or mistyped field), or None if nothing."""
    missing = [k for k in REQUIRED_KEYS if not isinstance(entry, dict) or k not in entry]
    if missing:
        return f"without {', '.join(missing)}"
    for key, (valid, expected) in FIELD_TYPES.items():
        if key in entry and not valid(entry[key]):
            value = entry[key]
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            return f'whose "{key}" is {shown} ({type(value).__name__}); it must be {expected}'
    return None


def read_entries(path: str | os.PathLike[str], missing_ok: bool = True) -> list[dict[str, Any]]:
    """The attempts recorded in ``path`` (``[]`` for a missing file when ``missing_ok``)."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise ProgressError(f"No progress file at {path}. Check the path (or the learner's name).",
                            path=path, reason="does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _refuse(path, f"cannot be read ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _refuse(path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    except RecursionError:  # "[[[[..." thousands deep: no progress file nests like that
        raise _refuse(path, "is not a tlcourse progress file (its JSON is nested thousands of levels deep)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _refuse(path, f"is not a tlcourse progress file (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise _refuse(path, f"has version {data.get('version')!r}; this tlcourse reads version {VERSION}")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise _refuse(path, "has no \"entries\" list")
    for i, e in enumerate(entries):
        problem = entry_problem(e)
        if problem:
            raise _refuse(path, f"has an entry {i} {problem}")
    return entries


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically and flushed to disk (see :mod:`tlcourse.atomic`)."""
    atomic.write_text(text, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-append-replace between processes (two notebooks of one learner)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; a single notebook at a time is the norm there
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_entry(path: str | os.PathLike[str], entry: Mapping[str, Any]) -> None:
    """Add one attempt to ``path``, keeping every earlier one (atomic; refuses corrupt files)."""
    path = Path(path)
    problem = entry_problem(dict(entry))
    if problem:  # never write what read_entries would refuse afterwards
        raise ProgressError(f"Not recorded in {path}: the progress entry is {problem}; got {dict(entry)!r:.200}.")
    with _locked(path):
        entries = read_entries(path)
        entries.append(dict(entry))
        doc = {"format": FORMAT, "version": VERSION, "entries": entries}
        atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def make_entry(
    learner: str,
    bank: str,
    question: str,
    answer: Any,
    feedback: Feedback,
    kind: str = "",
    bank_questions: int | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    """One attempt as stored: local time with its UTC offset, the answer made JSON-safe."""
    when = when or datetime.now(timezone.utc).astimezone()
    return {
        "learner": learner,
        "bank": bank,
        "question": question,
        "kind": kind,
        "answer": json_safe(answer),
        "correct": bool(feedback.correct),
        "message": str(feedback.message),
        "bank_questions": bank_questions,
        "time": when.isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- summaries


def parse_time(text: str) -> datetime:
    """An entry's ISO-8601 time as an aware datetime (naive ones are taken as UTC)."""
    t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class BankSummary:
    """One learner's standing on one bank.

    ``correct`` counts questions whose *latest* attempt is right (instant feedback invites
    retries, so "ever right" would say little); ``first_try`` those right at the first go.
    """

    learner: str
    bank: str
    questions: int
    answered: int
    correct: int
    first_try: int
    attempts: int
    last_attempt: str


def merge_files(
    paths: Iterable[str | os.PathLike[str]], problems: list[ProgressError] | None = None
) -> list[dict[str, Any]]:
    """All entries of several files (folders: their ``*.json``), duplicates dropped, by time.

    Without ``problems`` the first file that cannot be read raises its :class:`ProgressError`.
    With a list, such a file is skipped and its error appended there: a class's files come
    from many machines, and one damaged file must not hide everyone else's results.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for f in files:
        try:
            entries = read_entries(f, missing_ok=False)
        except ProgressError as exc:
            if problems is None:
                raise
            problems.append(exc)
            continue
        for e in entries:
            key = json.dumps(e, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(e)
    out.sort(key=lambda e: parse_time(e["time"]))
    return out


def summarise(entries: Sequence[Mapping[str, Any]]) -> list[BankSummary]:
    """Per (learner, bank): questions answered, right now, right first time, attempts, last time."""
    groups: OrderedDict[tuple[str, str], list[Mapping[str, Any]]] = OrderedDict()
    for e in sorted(entries, key=lambda e: parse_time(e["time"])):
        groups.setdefault((str(e["learner"]), str(e["bank"])), []).append(e)
    out = []
    for (learner, bank), items in groups.items():
        latest: dict[str, bool] = {}
        first: dict[str, bool] = {}
        for e in items:
            q = str(e["question"])
            first.setdefault(q, bool(e["correct"]))
            latest[q] = bool(e["correct"])
        sizes = [e.get("bank_questions") for e in items if isinstance(e.get("bank_questions"), int)]
        out.append(
            BankSummary(
                learner=learner,
                bank=bank,
                questions=max(sizes[-1] if sizes else 0, len(latest)),
                answered=len(latest),
                correct=sum(latest.values()),
                first_try=sum(first.values()),
                attempts=len(items),
                last_attempt=items[-1]["time"],
            )
        )
    return out


def class_table(entries: Sequence[Mapping[str, Any]]) -> "Any":
    """A pandas DataFrame, learners x banks, of questions right (latest attempt); NA = not tried.

    ``table.attrs["questions"]`` maps each bank to its number of questions.
    """
    import pandas as pd

    summaries = summarise(entries)
    learners = sorted({s.learner for s in summaries})
    banks = sorted({s.bank for s in summaries})
    table = pd.DataFrame(index=pd.Index(learners, name="learner"), columns=banks, dtype="Int64")
    sizes: dict[str, int] = {}
    for s in summaries:
        table.loc[s.learner, s.bank] = s.correct
        sizes[s.bank] = max(sizes.get(s.bank, 0), s.questions)
    table.attrs["questions"] = sizes
    return table


def format_summary(summaries: Sequence[BankSummary]) -> str:
    """A fixed-width text table of one learner's banks."""
    rows = [("bank", "answered", "correct", "first try", "attempts", "last attempt")]
    for s in summaries:
        rows.append(
            (
                s.bank,
                f"{s.answered}/{s.questions}",
                f"{s.correct}/{s.questions}",
                str(s.first_try),
                str(s.attempts),
                parse_time(s.last_attempt).strftime("%Y-%m-%d %H:%M"),
            )
        )
    return _fixed_width(rows)


def format_class_table(table: Any) -> str:
    """The class table as text: ``correct/questions`` per cell, ``-`` where not tried."""
    sizes = table.attrs.get("questions", {})
    rows = [("learner", *table.columns, "total")]
    total_q = sum(sizes.get(b, 0) for b in table.columns)
    for learner, row in table.iterrows():
        cells = ["-" if _na(v) else f"{int(v)}/{sizes.get(b, '?')}" for b, v in row.items()]
        total = sum(int(v) for v in row if not _na(v))
        rows.append((str(learner), *cells, f"{total}/{total_q}"))
    return _fixed_width(rows)


def _na(v: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def _fixed_width(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def write_class_csv(table: Any, path: str | os.PathLike[str]) -> Path:
    """The class table as CSV (atomic): one row per learner, ``<bank> (of N)`` columns of counts.

    Counts rather than "3/5" strings, because spreadsheets read "3/5" as a date. Learner and
    bank names come from learners' files, so a text cell a spreadsheet would run as a formula
    (``=HYPERLINK(...)``) is written with a leading ``'``, and a name holding a line break stays
    in its row (:mod:`tlcourse.csvsafe`). A path that
    cannot be written raises a :class:`ProgressError` naming it; nothing is left behind there.
    """
    sizes = table.attrs.get("questions", {})
    buf = io.StringIO()
    writer = SafeWriter(buf)
    total_q = sum(sizes.get(b, 0) for b in table.columns)
    writer.writerow(["learner", *[f"{b} (of {sizes.get(b, '?')})" for b in table.columns], f"total (of {total_q})"])
    for learner, row in table.iterrows():
        cells = ["" if _na(v) else int(v) for v in row]
        writer.writerow([str(learner), *cells, sum(int(v) for v in row if not _na(v))])
    path = Path(path)
    if path.is_dir():
        raise ProgressError(f"Cannot write the class table to {path}: it is a folder. Give a file name "
                            f"with --csv, such as {path / 'class.csv'}.", path=path, reason="is a folder")
    try:
        atomic_write_text(path, buf.getvalue())
    except OSError as exc:
        why = why_unwritable(path, exc)
        raise ProgressError(
            f"Cannot write the class table to {path}: {why}. Give --csv a path in a folder you "
            "can write to; nothing was written.", path=path, reason=why,
        ) from None
    return path


def cli_progress(args: Any) -> int:
    """``tlcourse progress [FILES...] [--csv PATH]``: one learner per bank, or a class table.

    One file that cannot be read stops the command (status 2, its reason on stderr). For a
    class (several files or a folder) each unreadable file is named on stderr and left out,
    the table is made for the others, and the exit status is 1 so a script notices the gap.
    """
    files = list(getattr(args, "files", None) or [])
    if not files:
        own = progress_path()
        if not own.exists():
            print(f"No progress yet: {own} does not exist. It is written when you first check an answer.")
            return 0
        files = [str(own)]
    one_file = len(files) == 1 and not Path(files[0]).is_dir()
    problems: list[ProgressError] = []
    entries = merge_files(files, problems=None if one_file else problems)
    for exc in problems:
        print(f"tlcourse progress: skipped {exc.path}: it {exc.reason} (left untouched).", file=sys.stderr)
    if not entries:
        print(f"No answers recorded in {', '.join(files)}.")
        return _class_status(problems)
    learners = {str(e["learner"]) for e in entries}
    if one_file and len(learners) == 1:
        print(f"Progress of {next(iter(learners))} ({files[0]}):")
        print(format_summary(summarise(entries)))
        table = class_table(entries)
    else:
        table = class_table(entries)
        print(f"Class table: {len(table)} learner(s), questions right (latest attempt) per bank:")
        print(format_class_table(table))
    if getattr(args, "csv", None):
        out = write_class_csv(table, args.csv)
        print(f"Wrote {out}")
    return _class_status(problems)


def _class_status(problems: Sequence[ProgressError]) -> int:
    if not problems:
        return 0
    print(f"tlcourse progress: {len(problems)} progress file(s) could not be read and are missing from "
          "the table (see above).", file=sys.stderr)
    return 1


__all__ = [
    "BankSummary",
    "ProgressError",
    "append_entry",
    "class_table",
    "cli_progress",
    "default_learner",
    "entry_problem",
    "format_class_table",
    "format_summary",
    "json_safe",
    "learner_slug",
    "make_entry",
    "merge_files",
    "parse_time",
    "progress_path",
    "read_entries",
    "summarise",
    "write_class_csv",
]
