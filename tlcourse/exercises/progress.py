"""Progress files: every checked answer, appended to a learner's JSON file, and their summaries.

One file per learner (``<cache>/progress/<learner>.json``, or ``TLCOURSE_PROGRESS``, or a
path given to :class:`~tlcourse.exercises.Exercises`) holds a list of attempts::

    {"format": "tlcourse-progress", "version": 1,
     "entries": [{"learner": "ana", "bank": "03_freezing", "question": "q1", "kind": "choice",
                  "answer": "b", "correct": true, "message": "Correct.",
                  "bank_questions": 8, "time": "2026-11-23T19:40:02+01:00"}, ...]}

Writes are atomic (temporary file in the same folder, then ``os.replace``) and read the
existing file first, so earlier entries are never lost; a file that does not parse is
*refused*, never overwritten: it may hold a term's work. ``tlcourse progress`` summarises one
learner per bank, or merges several learners' files into a class table (optionally CSV).
"""
from __future__ import annotations

import contextlib
import csv
import getpass
import io
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import CourseError
from ..paths import cache_dir
from .feedback import Feedback

FORMAT = "tlcourse-progress"
VERSION = 1
REQUIRED_KEYS = ("learner", "bank", "question", "correct", "time")


class ProgressError(CourseError):
    """A progress file cannot be read or written; the message names the file."""


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
        "Move it aside (or repair it) and run again; a new file will be started."
    )


def read_entries(path: str | os.PathLike[str], missing_ok: bool = True) -> list[dict[str, Any]]:
    """The attempts recorded in ``path`` (``[]`` for a missing file when ``missing_ok``)."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise ProgressError(f"No progress file at {path}. Check the path (or the learner's name).")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _refuse(path, f"cannot be read ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _refuse(path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _refuse(path, f"is not a tlcourse progress file (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise _refuse(path, f"has version {data.get('version')!r}; this tlcourse reads version {VERSION}")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise _refuse(path, "has no \"entries\" list")
    for i, e in enumerate(entries):
        missing = [k for k in REQUIRED_KEYS if not isinstance(e, dict) or k not in e]
        if missing:
            raise _refuse(path, f"has an entry {i} without {', '.join(missing)}")
        try:
            parse_time(e["time"])
        except (TypeError, ValueError) as exc:
            raise _refuse(path, f"has an entry {i} whose time {e['time']!r} is not ISO-8601") from exc
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
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise ProgressError(f"A progress entry needs {', '.join(missing)}; got {sorted(entry)}.")
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
        "message": feedback.message,
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


def merge_files(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """All entries of several files (folders: their ``*.json``), duplicates dropped, by time."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for f in files:
        for e in read_entries(f, missing_ok=False):
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

    Counts rather than "3/5" strings, because spreadsheets read "3/5" as a date.
    """
    sizes = table.attrs.get("questions", {})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    total_q = sum(sizes.get(b, 0) for b in table.columns)
    writer.writerow(["learner", *[f"{b} (of {sizes.get(b, '?')})" for b in table.columns], f"total (of {total_q})"])
    for learner, row in table.iterrows():
        cells = ["" if _na(v) else int(v) for v in row]
        writer.writerow([learner, *cells, sum(int(v) for v in row if not _na(v))])
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def cli_progress(args: Any) -> int:
    """``tlcourse progress [FILES...] [--csv PATH]``: one learner per bank, or a class table."""
    files = list(getattr(args, "files", None) or [])
    if not files:
        own = progress_path()
        if not own.exists():
            print(f"No progress yet: {own} does not exist. It is written when you first check an answer.")
            return 0
        files = [str(own)]
    entries = merge_files(files)
    if not entries:
        print(f"No answers recorded in {', '.join(files)}.")
        return 0
    learners = {str(e["learner"]) for e in entries}
    if len(files) == 1 and len(learners) == 1 and not Path(files[0]).is_dir():
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
    return 0


__all__ = [
    "BankSummary",
    "ProgressError",
    "append_entry",
    "class_table",
    "cli_progress",
    "default_learner",
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
