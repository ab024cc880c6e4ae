"""Question banks: loading, validation, grading of choice / numeric / text questions, finding banks.

Banks are data: every problem in one is reported at once, naming the file and the question;
a checker is named by its registered name alone, and a module path is refused before
anything is imported.
"""
from __future__ import annotations

import sys

import pytest
from filesnap import snapshot

from tlcourse.exercises import BankError, Exercises, find_bank, load_bank
from tlcourse.exercises.bank import available_banks, banks_dir, parse_bank

Q1_RIGHT = "only the new classification head"
LESSON_BANKS = [f"{n:02d}_{name}" for n, name in enumerate(
    ["golden_rule", "feature_hierarchy", "pretrained_models", "freezing", "feature_extraction", "fine_tuning",
     "decision_matrix", "case_plant_disease", "different_domains", "choosing_a_model"], start=0)]


# --------------------------------------------------------------------------- banks and grading


def test_example_bank_has_every_kind_and_reads_1e_minus_3_as_a_number(banks):
    bank = load_bank(banks / "example.yaml")
    assert bank.id == "example" and len(bank) == 10
    assert {q.kind for q in bank} == {"choice", "numeric", "text", "code"}
    assert bank["q4"].answer == pytest.approx(1e-3)  # PyYAML alone would give the string "1e-3"
    assert bank["q8"].expected == {"head_lr": pytest.approx(1e-3), "ratio": 10}
    assert bank["q8"].learner_args == ["model", "optimizer"]
    assert bank["q2"].multiple and not bank["q1"].multiple


def test_single_choice_accepts_text_or_letter_and_names_wrong_pick(banks):
    q = load_bank(banks / "example.yaml")["q1"]
    assert q.grade(Q1_RIGHT).correct
    assert q.grade("  ONLY the new   classification head ").correct
    assert q.grade("b").correct and q.grade("B)").correct
    wrong = q.grade("a")
    assert not wrong.correct and "every layer" in wrong.message
    odd = q.grade("z")
    assert not odd.correct and "not one of the options" in odd.message


def test_multiple_choice_needs_the_exact_set_and_counts_hits(banks):
    q = load_bank(banks / "example.yaml")["q2"]
    assert q.grade(["a", "d"]).correct
    assert q.grade(("calling model.train() before each epoch and nothing else", "a")).correct
    partial = q.grade(["a", "b"])
    assert not partial.correct
    assert partial.message == "You chose 1 of the 2 right options and 1 wrong one."
    assert not q.grade(["a"]).correct


def test_numeric_tolerances_and_non_numbers(banks):
    bank = load_bank(banks / "example.yaml")
    assert bank["q3"].grade(3843).correct and bank["q3"].grade("3843").correct
    low = bank["q3"].grade(3840)
    assert not low.correct and "too low" in low.message
    assert not bank["q3"].grade("many").correct
    assert bank["q4"].grade(0.001005).correct  # rel_tolerance 1 %
    assert not bank["q4"].grade(0.0011).correct


def test_text_answers_ignore_case_and_whitespace(banks):
    q = load_bank(banks / "example.yaml")["q5"]
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
    with pytest.raises(BankError, match=r"dup.yaml, line 5: the key 'answer' appears twice \(line 4 and line 5\)"):
        load_bank(dup)
    broken = tmp_path / "broken.yaml"
    broken.write_text("- id: a\n  kind: [text\n")
    with pytest.raises(BankError, match="broken.yaml is not valid YAML"):
        load_bank(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("title: nothing\n")
    with pytest.raises(BankError, match="non-empty list of questions"):
        load_bank(empty)


def test_finding_banks_by_name_path_cwd_and_missing(tmp_path, monkeypatch, banks):
    assert find_bank("example") == banks / "example.yaml"
    assert find_bank(str(banks / "example.yaml")) == banks / "example.yaml"
    with pytest.raises(BankError) as err:
        find_bank("03_freezng")
    assert "No question bank named '03_freezng'" in str(err.value) and "example" in str(err.value)
    # Without TLCOURSE_BANKS the notebook's folder is searched upwards.
    monkeypatch.delenv("TLCOURSE_BANKS")
    lesson = tmp_path / "repo" / "exercises"
    (lesson / "banks").mkdir(parents=True)
    (lesson / "banks" / "07_mine.yaml").write_text((banks / "example.yaml").read_text())
    monkeypatch.chdir(lesson)
    assert banks_dir() == lesson / "banks"
    assert available_banks() == ["07_mine"]
    monkeypatch.chdir(tmp_path / "repo")
    assert Exercises.load("07_mine", learner="x", headless=True).bank.id == "07_mine"


@pytest.mark.parametrize("name", LESSON_BANKS)
def test_every_lesson_bank_validates_with_code_exercises(banks, name):
    bank = load_bank(banks / f"{name}.yaml")
    kinds = [q.kind for q in bank]
    assert len(kinds) >= 5 and kinds.count("code") >= 2, (name, kinds)


def test_every_bank_names_its_checkers_by_registered_name_alone(banks):
    for path in sorted(banks.glob("*.yaml")):
        for q in load_bank(path):
            assert q.kind != "code" or q.checker.isidentifier(), (path.name, q.id, q.checker)


OLD_SCHEME = """\
- id: weights
  kind: code
  prompt: Build a weighted loss.
  checker: "tlcourse.exercises.checkers_domains:class_weighted_loss"
"""


def test_a_checker_written_as_a_module_path_is_refused_naming_file_question_and_fix(tmp_path):
    bank = tmp_path / "08_mine.yaml"
    bank.write_text(OLD_SCHEME)
    before = snapshot(tmp_path)
    with pytest.raises(BankError) as err:
        load_bank(bank)
    text = str(err.value)
    assert str(bank) in text and "question 1 (id 'weights')" in text
    assert "checker 'tlcourse.exercises.checkers_domains:class_weighted_loss' is a module path" in text
    assert "write `checker: class_weighted_loss`" in text
    assert snapshot(tmp_path) == before


def test_a_bank_cannot_make_the_loader_import_a_module(tmp_path, monkeypatch):
    """A module path in a bank names code to run: nothing named there is imported, not even to look."""
    planted = tmp_path / "planted_checker_module.py"
    marker = tmp_path / "imported.txt"
    planted.write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef check(value):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bank = tmp_path / "evil.yaml"
    bank.write_text(OLD_SCHEME.replace("tlcourse.exercises.checkers_domains:class_weighted_loss", "planted_checker_module:check"))
    with pytest.raises(BankError, match="is a module path"):
        load_bank(bank)
    assert not marker.exists() and "planted_checker_module" not in sys.modules
