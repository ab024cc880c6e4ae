"""The notebook API, headless: questions printed, answers checked and recorded, scores across sessions."""
from __future__ import annotations

from datetime import datetime

import pytest
import torch
from stage_setups import params_of, train_only

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.exercises import Exercises, read_entries
from tlcourse.exercises.feedback import Feedback


# --------------------------------------------------------------------------- headless runs


def test_headless_prints_checks_and_records_answers(capsys, progress_file, load_exercises):
    ex = load_exercises(answers={"q1": "b", "q3": 3000})
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


def test_headless_check_hint_solution_and_exam(capsys, monkeypatch, load_exercises):
    ex = load_exercises()
    ex.check("q5", "BatchNorm")
    ex.hint("q3")
    ex.solution("q3")
    out = capsys.readouterr().out
    assert "\u2713 Correct." in out and "running_mean" in out
    assert "in x out weights" in out and "Answer: 3843" in out
    exam = load_exercises(exam=True)
    exam.solution("q3")
    assert "hidden in exam mode" in capsys.readouterr().out
    monkeypatch.setenv("TLCOURSE_EXAM", "1")
    assert load_exercises().exam


def test_headless_is_detected_from_env_and_from_plain_python(monkeypatch):
    assert Exercises.load("example", learner="x").headless  # pytest runs outside a kernel
    monkeypatch.setenv("TLCOURSE_HEADLESS", "1")
    assert Exercises.load("example", learner="x").headless


def test_answers_and_calls_are_validated(load_exercises):
    with pytest.raises(CourseError, match="has no question 'q99'.*q1, q2"):
        load_exercises(answers={"q99": "a"})
    with pytest.raises(InvalidParameterError, match="code exercise"):
        load_exercises(answers={"q6": "done"})
    with pytest.raises(InvalidParameterError, match="must be a dict"):
        load_exercises(answers=["b"])
    ex = load_exercises()
    with pytest.raises(InvalidParameterError, match="not a code exercise"):
        ex.check_code("q1", model=None)
    with pytest.raises(InvalidParameterError, match="needs model=..., optimizer=...; missing optimizer"):
        ex.check_code("q8", model=None)
    with pytest.raises(InvalidParameterError, match="unexpected optimiser"):
        ex.check_code("q8", model=None, optimizer=None, optimiser=None)
    with pytest.raises(InvalidParameterError, match="come.* from the question bank"):
        ex.check_code("q8", model=None, optimizer=None, head_lr=1.0)


def test_check_code_with_a_value_checker_records_and_explains(capsys, progress_file, load_exercises):
    ex = load_exercises()
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


def test_blank_answers_are_not_attempts(progress_file, load_exercises):
    ex = load_exercises()
    fb = ex.grade("q5", "   ")
    assert not fb.correct and "No answer yet" in fb.message
    assert read_entries(progress_file) == []


def test_score_counts_latest_attempts_across_sessions(progress_file, load_exercises):
    ex = load_exercises()
    ex.grade("q1", "a")
    ex.grade("q1", "b")
    ex.grade("q3", 3843)
    ex.grade("q5", "dropout")
    again = load_exercises()  # a later session sees the same file
    score = again.score()
    assert (score.total, score.answered, score.correct, score.first_try) == (10, 3, 2, 1)
    assert score.per_question["q1"] is True and score.per_question["q5"] is False
    assert score.per_question["q2"] is None
    assert "2 of 10 right" in str(score) and "<table>" in score._repr_html_()
    other = Exercises.load("example", learner="bo", headless=True)  # same file, other learner
    assert other.score().answered == 0


def test_check_code_through_exercises(mobilenet, capsys, progress_file, load_exercises):
    model = mobilenet(3)
    ex = load_exercises()
    ex.check_code("q6", model=model)  # nothing frozen yet
    ex.check_code("q6", model=train_only(model, {"head"}))
    train_only(model, {"stage5", "top", "head"})
    opt = torch.optim.AdamW(
        [{"params": params_of(model, {"stage5", "top"}), "lr": 1e-4}, {"params": params_of(model, {"head"}), "lr": 1e-3}]
    )
    ex.check_code("q7", model=model)
    ex.check_code("q8", model=model, optimizer=opt)
    out = capsys.readouterr().out
    assert "stage5 (27 tensors, 795,264 weights) is still trainable" in out
    entries = read_entries(progress_file)
    assert [(e["question"], e["correct"]) for e in entries] == [("q6", False), ("q6", True), ("q7", True), ("q8", True)]
    assert entries[0]["answer"] == {"model": "<torchvision.models.mobilenetv2.MobileNetV2>"}
    assert entries[3]["answer"]["optimizer"] == "<torch.optim.adamw.AdamW>"
    assert ex.score().correct == 3
