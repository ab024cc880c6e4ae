"""The exercise engine's progress files: where they live, appending, corrupt files, class tables.

The engine's other tests (banks, checkers, widgets, headless runs, build) are this folder's other
modules; progress files from a whole class, damaged or hostile, are test_progress_files.py.
"""
from __future__ import annotations

import argparse
import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tlcourse.course.cli import main as cli_main
from tlcourse.exercises import Exercises, ProgressError
from tlcourse.exercises.feedback import Feedback
from tlcourse.exercises.progress import (
    append_entry,
    class_table,
    cli_progress,
    make_entry,
    merge_files,
    progress_path,
    read_entries,
    summarise,
)


@pytest.fixture(autouse=True)
def _isolated(exercise_env):
    """Each test: its own progress file (``progress_file``), the repository's banks, no exam/headless from outside."""


def _ex(**kw) -> Exercises:
    kw.setdefault("learner", "ana")
    kw.setdefault("headless", True)
    return Exercises.load("example", **kw)


# --------------------------------------------------------------------------- progress files


def test_progress_location_defaults_and_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("TLCOURSE_PROGRESS")
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    assert progress_path("Ana María") == tmp_path / "cache" / "progress" / "Ana_María.json"
    assert progress_path("x", tmp_path / "mine.json") == tmp_path / "mine.json"
    monkeypatch.setenv("TLCOURSE_PROGRESS", str(tmp_path / "env.json"))
    assert progress_path("x") == tmp_path / "env.json"
    ex = Exercises.load("example", learner="Ana María", headless=True, progress=tmp_path / "arg.json")
    ex.grade("q1", "b")
    assert read_entries(tmp_path / "arg.json")[0]["learner"] == "Ana María"


def test_appending_keeps_every_entry_and_leaves_no_temp_files(progress_file):
    for i in range(5):
        append_entry(progress_file, make_entry("ana", "example", f"q{i}", i, Feedback(i % 2 == 0, "m")))
    entries = read_entries(progress_file)
    assert [e["question"] for e in entries] == [f"q{i}" for i in range(5)]
    assert sorted(p.name for p in progress_file.parent.iterdir() if not p.name.endswith(".lock")) == ["me.json"]
    doc = json.loads(progress_file.read_text())
    assert doc["format"] == "tlcourse-progress" and doc["version"] == 1


@pytest.mark.parametrize(
    "content, why",
    [
        ("{\"format\": \"tlcourse-progress\", ", "is not valid JSON"),
        ("[1, 2, 3]", "is not a tlcourse progress file"),
        ('{"format": "tlcourse-progress", "version": 1, "entries": [{"learner": "a"}]}', "without bank"),
        ('{"format": "tlcourse-progress", "version": 9, "entries": []}', "has version 9"),
    ],
)
def test_corrupt_progress_file_is_refused_and_left_untouched(progress_file, content, why):
    progress_file.parent.mkdir(parents=True, exist_ok=True)
    progress_file.write_text(content)
    with pytest.raises(ProgressError) as err:
        append_entry(progress_file, make_entry("ana", "example", "q1", "b", Feedback(True, "ok")))
    assert why in str(err.value) and str(progress_file) in str(err.value) and "left untouched" in str(err.value)
    assert progress_file.read_text() == content
    with pytest.raises(ProgressError):
        _ex()  # refused at load, before any work is done


def _write_learner(path: Path, learner: str, answers: list[tuple[str, bool]], start: datetime) -> None:
    for i, (q, ok) in enumerate(answers):
        entry = make_entry(learner, "example", q, "x", Feedback(ok, "m"), bank_questions=10, when=start + timedelta(minutes=i))
        append_entry(path, entry)


def test_class_table_merges_learners_and_writes_csv(tmp_path, capsys):
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    ana, bo = tmp_path / "ana.json", tmp_path / "bo.json"
    _write_learner(ana, "ana", [("q1", False), ("q2", True), ("q1", True)], t0)
    _write_learner(bo, "bo", [("q1", True)], t0)
    append_entry(bo, make_entry("bo", "02_other", "q1", "x", Feedback(False, "m"), bank_questions=4, when=t0))
    entries = merge_files([ana, bo, ana])  # a file given twice adds nothing
    assert len(entries) == 5
    table = class_table(entries)
    assert list(table.index) == ["ana", "bo"] and list(table.columns) == ["02_other", "example"]
    assert int(table.loc["ana", "example"]) == 2 and int(table.loc["bo", "02_other"]) == 0
    assert table.isna().loc["ana", "02_other"]
    out_csv = tmp_path / "class.csv"
    assert cli_main(["progress", str(ana), str(bo), "--csv", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "ana" in printed and "2/10" in printed and "0/4" in printed and "-" in printed
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["learner", "02_other (of 4)", "example (of 10)", "total (of 14)"]
    assert rows[1] == ["ana", "", "2", "2"] and rows[2] == ["bo", "0", "1", "1"]


def test_one_learner_summary_and_own_file(tmp_path, capsys, progress_file):
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    _write_learner(progress_file, "ana", [("q1", False), ("q2", True)], t0)
    append_entry(progress_file, make_entry("ana", "example", "q1", "b", Feedback(True, "m"), bank_questions=10, when=t0 + timedelta(hours=1)))
    (s,) = summarise(read_entries(progress_file))
    assert (s.answered, s.correct, s.first_try, s.attempts) == (2, 2, 1, 3)
    assert cli_progress(argparse.Namespace(files=[], csv=None)) == 0  # TLCOURSE_PROGRESS: own file
    out = capsys.readouterr().out
    assert "Progress of ana" in out and "example" in out and "2/10" in out and "2026-03-01 10:00" in out
    progress_file.unlink()
    assert cli_progress(argparse.Namespace(files=[], csv=None)) == 0
    assert "No progress yet" in capsys.readouterr().out
    assert cli_main(["progress", str(tmp_path / "missing.json")]) == 2
