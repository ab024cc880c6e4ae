"""Classroom progress files from others: corrupt or hostile files, and a CSV that cannot be written.

A teacher merges a class's progress files into one table. Each file comes from a learner's
machine, so any of them may be damaged or edited: one bad file must not hide the class's other
results, a wrong type (``"correct": "no"``) must not be counted as an answer, a learner's name
must not become a spreadsheet formula, and an unwritable ``--csv`` destination gives one clear
line. Every test also checks that no progress file was changed and no half file was left.
"""
from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from filesnap import snapshot
from tlcourse.course.cli import main
from tlcourse.exercises.feedback import Feedback
from tlcourse.exercises.progress import ProgressError, append_entry, make_entry, read_entries

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _learner(path: Path, learner: str, answers: list[tuple[str, bool]], bank: str = "example") -> Path:
    """A progress file written the way the notebooks write it."""
    for i, (question, ok) in enumerate(answers):
        entry = make_entry(learner, bank, question, "b", Feedback(ok, "m"), kind="choice",
                           bank_questions=10, when=T0 + timedelta(minutes=i))
        append_entry(path, entry)
    return path


def _edited(path: Path, **changes: object) -> Path:
    """Rewrite the first entry of ``path`` as a learner with a text editor might."""
    doc = json.loads(path.read_text())
    doc["entries"][0].update(changes)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture()
def klass(tmp_path: Path) -> Path:
    """A class folder: ana (2 right of 2) and bo (1 right of 2)."""
    folder = tmp_path / "class"
    _learner(folder / "ana.json", "ana", [("q1", True), ("q2", True)])
    _learner(folder / "bo.json", "bo", [("q1", True), ("q2", False)])
    return folder


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------ one corrupt file


def test_one_corrupt_file_is_named_and_the_class_table_still_made(
    klass: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (klass / "cy.json").write_text('{"format": "tlcourse-progress", "version": 1, "entr')  # cut short
    _edited(_learner(klass / "dee.json", "dee", [("q1", False)]), correct="no")  # "no" is truthy
    before = snapshot(klass)
    out_csv = tmp_path / "class.csv"
    code = main(["progress", str(klass), "--csv", str(out_csv)])
    out, err = capsys.readouterr()
    assert code == 1  # the table is incomplete: say so with the exit status
    problems = _lines(err)
    assert any(str(klass / "cy.json") in line and "is not valid JSON" in line for line in problems), err
    assert any(str(klass / "dee.json") in line and '"correct"' in line and "'no'" in line for line in problems), err
    assert problems[-1] == ("tlcourse progress: 2 progress file(s) could not be read and are missing "
                            "from the table (see above).")
    assert len(problems) == 3 and all(line.startswith("tlcourse progress: ") for line in problems)
    assert "Class table: 2 learner(s)" in out
    rows = list(csv.reader(out_csv.open()))
    assert [r[0] for r in rows[1:]] == ["ana", "bo"] and rows[1][1:] == ["2", "2"] and rows[2][1:] == ["1", "1"]
    snapshot_after = snapshot(klass)
    assert snapshot_after == before  # the corrupt files were only read, never repaired or removed


def test_a_file_nested_thousands_deep_is_refused_not_a_crash(klass: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = klass / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # json.loads would raise RecursionError
    before = snapshot(klass)
    assert main(["progress", str(klass)]) == 1
    out, err = capsys.readouterr()
    assert f"skipped {deep}: it is not a tlcourse progress file (its JSON is nested" in err
    assert "Class table: 2 learner(s)" in out and snapshot(klass) == before


def test_a_single_corrupt_file_still_stops_with_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own = _edited(_learner(tmp_path / "me.json", "ana", [("q1", False)]), correct="no")
    before = own.read_bytes()
    assert main(["progress", str(own)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(_lines(err)) == 1
    assert str(own) in err and '"correct"' in err and "true or false" in err
    assert own.read_bytes() == before


# ------------------------------------------------------------------------ field types


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("correct", "no", 'whose "correct" is \'no\' (str); it must be true or false'),
        ("correct", 1, 'whose "correct" is 1 (int); it must be true or false'),
        ("learner", 7, 'whose "learner" is 7 (int); it must be a non-empty text'),
        ("bank", None, 'whose "bank" is None (NoneType); it must be a non-empty text'),
        ("question", "", 'whose "question" is \'\' (str); it must be a non-empty text'),
        ("time", 20260301, 'whose "time" is 20260301 (int); it must be an ISO-8601 date and time'),
        ("kind", ["choice"], 'whose "kind" is [\'choice\'] (list); it must be a text'),
        ("message", {"a": 1}, 'whose "message" is {\'a\': 1} (dict); it must be a text'),
        ("bank_questions", "10", 'whose "bank_questions" is \'10\' (str); it must be a whole number'),
        ("bank_questions", True, 'whose "bank_questions" is True (bool); it must be a whole number'),
        ("bank_questions", -3, 'whose "bank_questions" is -3 (int); it must be a whole number'),
    ],
)
def test_every_field_has_its_type_checked(tmp_path: Path, field: str, value: object, why: str) -> None:
    path = _edited(_learner(tmp_path / "me.json", "ana", [("q1", False), ("q2", True)]), **{field: value})
    before = path.read_bytes()
    with pytest.raises(ProgressError) as err:
        read_entries(path)
    assert f"Progress file {path} has an entry 0 {why}" in str(err.value)
    with pytest.raises(ProgressError):  # and nothing is appended to it either
        append_entry(path, make_entry("ana", "example", "q3", "b", Feedback(True, "m")))
    assert path.read_bytes() == before


def test_an_entry_that_would_be_refused_later_is_never_written(tmp_path: Path) -> None:
    path = _learner(tmp_path / "me.json", "ana", [("q1", True)])
    before = path.read_bytes()
    bad = make_entry("ana", "example", "q2", "b", Feedback(True, "m"))
    bad["correct"] = "yes"
    with pytest.raises(ProgressError, match='"correct"'):
        append_entry(path, bad)
    assert path.read_bytes() == before and len(read_entries(path)) == 1


# ------------------------------------------------------------------------ CSV injection


def test_names_that_look_like_formulas_are_neutralised_in_the_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = ['=HYPERLINK("http://evil.example","grade")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd",
               "eve\r=1+1,x"]  # a bare carriage return must not split the row
    files = [_learner(tmp_path / f"l{i}.json", name, [("q1", True)], bank=f"b{i}") for i, name in enumerate(hostile)]
    files.append(_learner(tmp_path / "bank.json", "zoe", [("q1", True)], bank="=1+2"))
    out_csv = tmp_path / "class.csv"
    assert main(["progress", *map(str, files), "--csv", str(out_csv)]) == 0
    capsys.readouterr()
    rows = list(csv.reader(out_csv.open(newline="")))
    learners = [r[0] for r in rows[1:]]
    assert len(rows) == len(hostile) + 2  # the header, then one row per learner
    assert sorted(learners) == sorted([("'" + n if n[0] in "=+-@\t\r" else n) for n in hostile] + ["zoe"])
    assert "'=1+2 (of 10)" in rows[0]  # bank names come from the files too
    cells = [c for r in rows for c in r if c]
    assert not any(c[0] in "=+-@\t\r" for c in cells), cells


# ------------------------------------------------------------------------ unwritable --csv


def test_csv_destination_that_cannot_be_written_gives_one_line(
    klass: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, where the CSV's folder should be\n")
    target = blocker / "class.csv"
    before = snapshot(tmp_path)
    code = main(["progress", str(klass), "--csv", str(target)])
    out, err = capsys.readouterr()
    assert code == 2
    assert _lines(err) == [err.strip()] and err.startswith(f"tlcourse progress: Cannot write the class table to {target}")
    assert f"{blocker} is a file, not a folder" in err and "--csv" in err  # why, and what to do
    assert "Class table: 2 learner(s)" in out  # the table itself was still shown
    assert snapshot(tmp_path) == before  # nothing written, nothing half-written


def test_csv_destination_that_is_a_folder(klass: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    before = snapshot(tmp_path)
    assert main(["progress", str(klass), "--csv", str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and f"Cannot write the class table to {folder}: it is a folder" in err
    assert str(folder / "class.csv") in err  # what to give instead
    assert snapshot(tmp_path) == before
