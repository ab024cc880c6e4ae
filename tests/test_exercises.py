"""The exercise engine without models: banks, grading, widgets, headless runs, progress, build."""
from __future__ import annotations

import argparse
import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest

from tlcourse.cli import main as cli_main
from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.exercises import BankError, Exercises, ProgressError, find_bank, load_bank
from tlcourse.exercises.bank import available_banks, banks_dir, parse_bank
from tlcourse.exercises.build import (
    ANSWERS_PLACEHOLDER,
    PLACEHOLDER,
    BuildError,
    build,
    check_in_sync,
    strip_source,
)
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

ROOT = Path(__file__).resolve().parents[1]
BANKS = ROOT / "exercises" / "banks"
Q1_RIGHT = "only the new classification head"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Each test: its own progress file, the repository's banks, no exam/headless from outside."""
    monkeypatch.setenv("TLCOURSE_BANKS", str(BANKS))
    monkeypatch.setenv("TLCOURSE_PROGRESS", str(tmp_path / "progress" / "me.json"))
    for var in ("TLCOURSE_EXAM", "TLCOURSE_HEADLESS", "TLCOURSE_LEARNER"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def progress_file(tmp_path) -> Path:
    return tmp_path / "progress" / "me.json"


def _ex(**kw) -> Exercises:
    kw.setdefault("learner", "ana")
    kw.setdefault("headless", True)
    return Exercises.load("example", **kw)


# --------------------------------------------------------------------------- banks and grading


def test_example_bank_has_every_kind_and_reads_1e_minus_3_as_a_number():
    bank = load_bank(BANKS / "example.yaml")
    assert bank.id == "example" and len(bank) == 10
    assert {q.kind for q in bank} == {"choice", "numeric", "text", "code"}
    assert bank["q4"].answer == pytest.approx(1e-3)  # PyYAML alone would give the string "1e-3"
    assert bank["q8"].expected == {"head_lr": pytest.approx(1e-3), "ratio": 10}
    assert bank["q8"].learner_args == ["model", "optimizer"]
    assert bank["q2"].multiple and not bank["q1"].multiple


def test_single_choice_accepts_text_or_letter_and_names_wrong_pick():
    q = load_bank(BANKS / "example.yaml")["q1"]
    assert q.grade(Q1_RIGHT).correct
    assert q.grade("  ONLY the new   classification head ").correct
    assert q.grade("b").correct and q.grade("B)").correct
    wrong = q.grade("a")
    assert not wrong.correct and "every layer" in wrong.message
    odd = q.grade("z")
    assert not odd.correct and "not one of the options" in odd.message


def test_multiple_choice_needs_the_exact_set_and_counts_hits():
    q = load_bank(BANKS / "example.yaml")["q2"]
    assert q.grade(["a", "d"]).correct
    assert q.grade(("calling model.train() before each epoch and nothing else", "a")).correct
    partial = q.grade(["a", "b"])
    assert not partial.correct
    assert partial.message == "You chose 1 of the 2 right options and 1 wrong one."
    assert not q.grade(["a"]).correct


def test_numeric_tolerances_and_non_numbers():
    bank = load_bank(BANKS / "example.yaml")
    assert bank["q3"].grade(3843).correct and bank["q3"].grade("3843").correct
    low = bank["q3"].grade(3840)
    assert not low.correct and "too low" in low.message
    assert not bank["q3"].grade("many").correct
    assert bank["q4"].grade(0.001005).correct  # rel_tolerance 1 %
    assert not bank["q4"].grade(0.0011).correct


def test_text_answers_ignore_case_and_whitespace():
    q = load_bank(BANKS / "example.yaml")["q5"]
    assert q.grade("  Batch   NORMALISATION ").correct
    assert q.grade("batchnorm").correct
    wrong = q.grade("dropout")
    assert not wrong.correct and "'dropout' is not an accepted answer" in wrong.message


GOOD = {"id": "a", "kind": "choice", "prompt": "?", "options": ["x", "y"], "answer": "x"}


@pytest.mark.parametrize(
    "question, expected",
    [
        ({**GOOD, "kind": "essay"}, "unknown kind 'essay'"),
        ({**GOOD, "answer": "z"}, "answer 'z' is not among the options"),
        ({**GOOD, "anwser": "x"}, "unknown key(s) anwser"),
        ({**GOOD, "answers": ["x"]}, "exactly one of 'answer'"),
        ({**GOOD, "options": [True, False], "answer": True}, "put it in quotes"),
        ({**GOOD, "options": ["x", " X "]}, "appears twice"),
        ({**GOOD, "prompt": None}, "missing 'prompt'"),
        ({"id": "n", "kind": "numeric", "prompt": "?", "answer": "ten"}, "needs a number 'answer'"),
        ({"id": "n", "kind": "numeric", "prompt": "?", "answer": 1, "tolerance": -1}, "'tolerance' must be a number >= 0"),
        ({"id": "t", "kind": "text", "prompt": "?"}, "needs 'accepted' forms"),
        ({"id": "c", "kind": "code", "prompt": "?", "checker": "frozen_head"}, "unknown checker 'frozen_head'"),
        (
            {"id": "c", "kind": "code", "prompt": "?", "checker": "new_head", "expected": {"classes": 3}},
            "takes no argument(s) classes",
        ),
        ({"id": "bad id!", "kind": "text", "prompt": "?", "accepted": ["a"]}, "'id' must be a short name"),
    ],
)
def test_bank_validation_names_the_problem(question, expected):
    with pytest.raises(BankError) as err:
        parse_bank([question], "demo", source="demo.yaml")
    assert expected in str(err.value)
    assert "demo.yaml" in str(err.value)


def test_bank_validation_reports_all_problems_and_duplicate_ids():
    data = [GOOD, {**GOOD, "answer": "nope"}, dict(GOOD), {**GOOD, "id": "b", "kind": "quiz"}]
    with pytest.raises(BankError) as err:
        parse_bank(data, "demo", source="demo.yaml")
    text = str(err.value)
    assert "4 problem(s)" in text  # question 2 is both wrong and a duplicate
    assert "question 3 (id 'a'): duplicate id 'a' (first used by question 1)" in text
    assert "question 2 (id 'a'): answer 'nope'" in text
    assert "unknown kind 'quiz'" in text


def test_yaml_level_errors(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("- id: a\n  kind: text\n  prompt: x\n  answer: a\n  answer: b\n")
    with pytest.raises(BankError, match="duplicate key 'answer'"):
        load_bank(dup)
    broken = tmp_path / "broken.yaml"
    broken.write_text("- id: a\n  kind: [text\n")
    with pytest.raises(BankError, match="broken.yaml is not valid YAML"):
        load_bank(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("title: nothing\n")
    with pytest.raises(BankError, match="non-empty list of questions"):
        load_bank(empty)


def test_finding_banks_by_name_path_cwd_and_missing(tmp_path, monkeypatch):
    assert find_bank("example") == BANKS / "example.yaml"
    assert find_bank(str(BANKS / "example.yaml")) == BANKS / "example.yaml"
    with pytest.raises(BankError) as err:
        find_bank("03_freezng")
    assert "No question bank named '03_freezng'" in str(err.value) and "example" in str(err.value)
    # Without TLCOURSE_BANKS the notebook's folder is searched upwards.
    monkeypatch.delenv("TLCOURSE_BANKS")
    lesson = tmp_path / "repo" / "exercises"
    (lesson / "banks").mkdir(parents=True)
    (lesson / "banks" / "07_mine.yaml").write_text((BANKS / "example.yaml").read_text())
    monkeypatch.chdir(lesson)
    assert banks_dir() == lesson / "banks"
    assert available_banks() == ["07_mine"]
    monkeypatch.chdir(tmp_path / "repo")
    assert Exercises.load("07_mine", learner="x", headless=True).bank.id == "07_mine"


# --------------------------------------------------------------------------- headless runs


def test_headless_prints_checks_and_records_answers(capsys, progress_file):
    ex = _ex(answers={"q1": "b", "q3": 3000})
    ex.ask("q1")
    ex.ask("q3")
    ex.ask("q4")  # no answer given: printed, not recorded
    ex.ask("q6")  # code exercise: printed with how to check it
    out = capsys.readouterr().out
    assert "[q1] You fine-tune" in out and "b) only the new classification head" in out
    assert "\u2713 Correct." in out and "The new head starts random" in out
    assert "\u2717 3000 is too low." in out and "ex.hint('q3')" in out
    assert "no answer yet: add 'q4'" in out
    assert "ex.check_code('q6', model=...)" in out
    entries = read_entries(progress_file)
    assert [(e["question"], e["correct"], e["answer"]) for e in entries] == [("q1", True, "b"), ("q3", False, 3000)]
    e = entries[0]
    assert e["learner"] == "ana" and e["bank"] == "example" and e["bank_questions"] == 10
    assert datetime.fromisoformat(e["time"]).tzinfo is not None


def test_headless_check_hint_solution_and_exam(capsys, monkeypatch):
    ex = _ex()
    ex.check("q5", "BatchNorm")
    ex.hint("q3")
    ex.solution("q3")
    out = capsys.readouterr().out
    assert "\u2713 Correct." in out and "running_mean" in out
    assert "in x out weights" in out and "Answer: 3843" in out
    exam = _ex(exam=True)
    exam.solution("q3")
    assert "hidden in exam mode" in capsys.readouterr().out
    monkeypatch.setenv("TLCOURSE_EXAM", "1")
    assert _ex().exam


def test_headless_is_detected_from_env_and_from_plain_python(monkeypatch):
    assert Exercises.load("example", learner="x").headless  # pytest runs outside a kernel
    monkeypatch.setenv("TLCOURSE_HEADLESS", "1")
    assert Exercises.load("example", learner="x").headless


def test_answers_and_calls_are_validated():
    with pytest.raises(CourseError, match="has no question 'q99'.*q1, q2"):
        _ex(answers={"q99": "a"})
    with pytest.raises(InvalidParameterError, match="code exercise"):
        _ex(answers={"q6": "done"})
    with pytest.raises(InvalidParameterError, match="must be a dict"):
        _ex(answers=["b"])
    ex = _ex()
    with pytest.raises(InvalidParameterError, match="not a code exercise"):
        ex.check_code("q1", model=None)
    with pytest.raises(InvalidParameterError, match="needs model=..., optimizer=...; missing optimizer"):
        ex.check_code("q8", model=None)
    with pytest.raises(InvalidParameterError, match="unexpected optimiser"):
        ex.check_code("q8", model=None, optimizer=None, optimiser=None)
    with pytest.raises(InvalidParameterError, match="come.* from the question bank"):
        ex.check_code("q8", model=None, optimizer=None, head_lr=1.0)


def test_check_code_with_a_value_checker_records_and_explains(capsys, progress_file):
    ex = _ex()
    ex.check_code("q10", value=3843 / 2227715)
    ex.check_code("q10", value=0.5)
    ex.check_code("q9", model="not a model")
    out = capsys.readouterr().out
    assert "\u2713" in out and "0.5 is too high" in out
    assert "Expected a torch.nn.Module as the model, got a str" in out
    entries = read_entries(progress_file)
    assert [(e["question"], e["correct"]) for e in entries] == [("q10", True), ("q10", False), ("q9", False)]
    assert entries[0]["answer"] == {"value": pytest.approx(3843 / 2227715)}
    assert ex.feedback("q10") == Feedback(False, "0.5 is too high.")


def test_blank_answers_are_not_attempts(progress_file):
    ex = _ex()
    fb = ex.grade("q5", "   ")
    assert not fb.correct and "No answer yet" in fb.message
    assert read_entries(progress_file) == []


def test_score_counts_latest_attempts_across_sessions(progress_file):
    ex = _ex()
    ex.grade("q1", "a")
    ex.grade("q1", "b")
    ex.grade("q3", 3843)
    ex.grade("q5", "dropout")
    again = _ex()  # a later session sees the same file
    score = again.score()
    assert (score.total, score.answered, score.correct, score.first_try) == (10, 3, 2, 1)
    assert score.per_question["q1"] is True and score.per_question["q5"] is False
    assert score.per_question["q2"] is None
    assert "2 of 10 right" in str(score) and "<table>" in score._repr_html_()
    other = Exercises.load("example", learner="bo", headless=True)  # same file, other learner
    assert other.score().answered == 0


# --------------------------------------------------------------------------- widgets


def test_widgets_give_instant_feedback_and_record(progress_file):
    ex = _ex(headless=False)
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
def test_each_widget_kind(qid, value, right, progress_file):
    import ipywidgets as widgets

    ex = _ex(headless=False)
    w = ex.widget(qid)
    kind = {"q2": widgets.SelectMultiple, "q3": widgets.FloatText, "q4": widgets.FloatText, "q5": widgets.Text}
    assert isinstance(w.input, kind[qid])
    w.input.value = value
    w.check_button.click()
    assert ("\u2713" in w.feedback.value) is right
    assert read_entries(progress_file)[-1]["correct"] is right


def test_exam_mode_hides_and_disables_reveal():
    ex = _ex(headless=False, exam=True)
    w = ex.widget("q3")
    assert w.reveal_button.disabled and w.reveal_button.layout.display == "none"
    w.reveal_button.click()  # disabled buttons can still be clicked from code: nothing leaks
    assert "3843" not in w.extra.value
    assert w.hint_button.layout.display != "none"
    assert ex.widget("q6").check_button is None and ex.widget("q6").input is None


def test_widget_mode_with_answers_prefills_and_checks(progress_file):
    ex = _ex(headless=False, answers={"q1": "b"})
    ex.ask("q1")  # outside a kernel display() just prints; it must not block
    w = ex.widget("q1")
    assert w.input.value == Q1_RIGHT and "\u2713" in w.feedback.value
    assert read_entries(progress_file)[0]["correct"] is True


def test_widget_reports_a_corrupt_progress_file_without_touching_it(progress_file):
    ex = _ex(headless=False)
    progress_file.parent.mkdir(parents=True, exist_ok=True)
    progress_file.write_text("{not json")
    w = ex.widget("q5")
    w.input.value = "bn"
    w.check_button.click()
    assert "is not valid JSON" in w.feedback.value and str(progress_file) in w.feedback.value
    assert progress_file.read_text() == "{not json"


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


# --------------------------------------------------------------------------- building student notebooks


SOLUTION_CELLS = [
    ("markdown", "# Tiny exercise\nFreeze the model."),
    ("code", 'answers = {\n    # BEGIN SOLUTION\n    "q1": "b",\n    "q3": 3843,\n    # END SOLUTION\n}'),
    ("code", "def double(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n\nresult = double(4)"),
    ("code", "# BEGIN SOLUTION\nsecret = 42\n# END SOLUTION\nprint('done')"),
]


def _solution_notebook(root: Path, name: str = "01_tiny.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    for kind, src in SOLUTION_CELLS:
        cell = nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        if kind == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="old output\n")]
            cell.execution_count = 3
        nb.cells.append(cell)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["widgets"] = {"state": {}}
    path = root / "solutions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_strip_source_placeholders_keep_cells_runnable():
    src = SOLUTION_CELLS[1][1]
    assert strip_source(src) == f"answers = {{\n    {ANSWERS_PLACEHOLDER}\n}}"
    fn = strip_source(SOLUTION_CELLS[2][1])
    assert fn.splitlines()[1] == f"    {PLACEHOLDER}"
    namespace: dict = {}
    exec(strip_source(src) + "\n" + fn, namespace)  # noqa: S102 - the point: it runs
    assert namespace["answers"] == {} and namespace["result"] is None
    with pytest.raises(BuildError, match="never closed"):
        strip_source("# BEGIN SOLUTION\nx = 1")
    with pytest.raises(BuildError, match="without a '# BEGIN SOLUTION'"):
        strip_source("x = 1\n# END SOLUTION")
    with pytest.raises(BuildError, match="inside the block opened at line 1"):
        strip_source("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION")


def test_build_writes_student_notebooks_and_check_in_sync(tmp_path, capsys):
    root = tmp_path / "exercises"
    sol = _solution_notebook(root)
    assert [p.name for p in build(root)] == ["01_tiny.ipynb"]
    student = nbformat.read(root / "01_tiny.ipynb", as_version=4)
    code = [c for c in student.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "3843" not in "".join(c.source for c in code) and "secret" not in code[2].source
    assert code[2].source == f"{PLACEHOLDER}\nprint('done')"
    assert student.cells[1].metadata["tags"] == ["parameters"] and "widgets" not in student.metadata
    assert check_in_sync(root) == [] and build(root) == []
    # The solution changes: the student notebook is stale until rebuilt.
    nb = nbformat.read(sol, as_version=4)
    nb.cells[3].source = nb.cells[3].source.replace("done", "finished")
    nbformat.write(nb, sol)
    assert any("out of date" in p for p in check_in_sync(root))
    assert cli_main(["exercises", "build", "--check", "--dir", str(root)]) == 1
    assert cli_main(["exercises", "build", "--dir", str(root)]) == 0
    assert cli_main(["exercises", "build", "--check", "--dir", str(root)]) == 0
    (root / "02_orphan.ipynb").write_text((root / "01_tiny.ipynb").read_text())
    (root / "01_tiny.ipynb").unlink()
    problems = check_in_sync(root)
    assert any("01_tiny.ipynb is missing" in p for p in problems)
    assert any("02_orphan.ipynb has no solution notebook" in p for p in problems)
    capsys.readouterr()


def test_build_refuses_markers_that_break_the_cell(tmp_path):
    root = tmp_path / "exercises"
    path = _solution_notebook(root)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("x = (1 +\n# BEGIN SOLUTION\n2)\n# END SOLUTION"))
    nbformat.write(nb, path)
    with pytest.raises(BuildError, match="cell 4: without its solution the cell is not valid Python"):
        build(root)
    assert not (root / "01_tiny.ipynb").exists()
