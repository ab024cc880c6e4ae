"""A learner answers exercise 03 in JupyterLab, in Chromium: widgets, *Check*, feedback, progress.

One question of each kind (one right option, several right options, a number, a code
exercise typed into a cell), each answered wrong and then right, exactly as a person does it.
What the widgets say is compared with what the exercise engine says for the same answer (so a
widget that shows nothing, or something else, fails), the progress file the kernel wrote is
read back from disk, and ``tlcourse progress FILE`` must report the same answers. In exam mode
no *Reveal solution* button is shown. Screenshots of every step go to ``runs/browser/``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browser_env import ROOT, SHOTS, need_browser

need_browser()  # skip here (fail under TLCOURSE_REQUIRE_BROWSER=1) before Playwright is imported

from learner import Notebook, buttons  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser

NOTEBOOK = "exercises/03_freezing.ipynb"
BANK = ROOT / "exercises" / "banks" / "03_freezing.yaml"
RUN_ALL_S = 300  # MobileNetV2 built once; about 10 s on an idle laptop, bounded for a busy CI box
CHOICE, MULTI, NUMERIC, CODE = "bn_still_changes", "eval_vs_grad", "head_params", "freeze_head"
LEARNER = "anonymous"  # the name in the notebook's parameters cell, as a learner finds it


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The exercise engine on the same bank, headless: what each answer *should* get."""
    from tlcourse.exercises import Exercises

    return Exercises.load(BANK, headless=True, progress=tmp_path_factory.mktemp("engine") / "p.json")


def _label(question, option: str) -> str:
    return question.labelled_options()[question.options.index(option)]


def _start(start_lab, course: Path, tmp_path: Path, **env: str):
    cache = tmp_path / "learner-cache"  # the learner's own cache: their progress file lands here
    return start_lab(course, env={"TLCOURSE_CACHE": str(cache), **env}), cache


def test_learner_answers_each_kind_of_question(start_lab, course, page, engine, tmp_path, monkeypatch):
    t0 = time.monotonic()
    lab, cache = _start(start_lab, course, tmp_path)
    nb = Notebook(page, SHOTS, "exercises")
    nb.open(lab.url(f"lab/tree/{NOTEBOOK}"))
    nb.shot("opened")
    nb.run_all(RUN_ALL_S)
    nb.assert_every_cell_ran()
    assert len(nb.question_boxes().all()) == len(engine), "not every question rendered as a widget"
    nb.shot("ran-all", nb.question(CHOICE).box)

    # One right option: a wrong pick is named in the feedback, the right one is accepted.
    q, bank_q = nb.question(CHOICE), engine.question(CHOICE)
    wrong = next(o for o in bank_q.options if o != bank_q.answer)
    q.choose(_label(bank_q, wrong))
    shown = q.check(bank_q.grade(wrong).message)
    assert wrong in shown and "\u2717" in shown
    nb.shot("choice-wrong", q.box)
    q.choose(_label(bank_q, bank_q.answer))
    shown = q.check(bank_q.grade(bank_q.answer).message)
    assert "\u2713" in shown and bank_q.explanation[:40] in shown
    q.button("Hint").click()
    expect(q.extra).to_contain_text(bank_q.hint, timeout=30_000)
    nb.shot("choice-right-and-hint", q.box)

    # Several right options: one right and one wrong chosen -> counted in the feedback.
    q, bank_q = nb.question(MULTI), engine.question(MULTI)
    wrong_pick = [bank_q.answers[0], next(o for o in bank_q.options if o not in bank_q.answers)]
    q.select([_label(bank_q, o) for o in wrong_pick])
    shown = q.check(bank_q.grade(wrong_pick).message)
    assert f"1 of the {len(bank_q.answers)} right options" in shown and "1 wrong" in shown
    nb.shot("multi-wrong", q.box)
    q.select([_label(bank_q, o) for o in bank_q.answers])
    q.check(bank_q.grade(list(bank_q.answers)).message)
    nb.shot("multi-right", q.box)
    nb.code_cell(f'ex.ask("{MULTI}")').screenshot(path=str(SHOTS / "exercises-answered.png"))

    # A number: too low is said to be too low.
    q, bank_q = nb.question(NUMERIC), engine.question(NUMERIC)
    too_low = int(bank_q.answer) - 15
    q.type_number(too_low)
    shown = q.check(bank_q.grade(too_low).message)
    assert "too low" in shown
    nb.shot("numeric-wrong", q.box)
    q.type_number(int(bank_q.answer))
    q.check(bank_q.grade(int(bank_q.answer)).message)
    nb.shot("numeric-right", q.box)

    _code_exercise(nb, engine)

    # Outside exam mode every question offers its solution.
    expect(buttons(page, "Reveal solution").filter(visible=True)).to_have_count(len(engine))

    _progress_file_holds_the_answers(cache, engine, monkeypatch)
    print(f"\nbrowser exercise test: {time.monotonic() - t0:.0f} s")


def _code_exercise(nb: Notebook, engine) -> None:
    """The learner types code into the exercise cell and runs it: wrong first, then right."""
    from tlcourse import models

    bank_q = engine.question(CODE)
    check_line = f'ex.check_code("{CODE}", model=model)'
    cell = nb.code_cell(check_line)
    freeze_all = "for p in model.parameters():\n    p.requires_grad = False\n"
    # What the engine says for the same two states of the same model, built here.
    model, _ = models.create_model("mobilenet_v2", 15)
    for p in model.parameters():
        p.requires_grad = False
    wrong_message = engine.grade(CODE, model=model).message
    for p in models.get_head(model).parameters():
        p.requires_grad = True
    right_message = engine.grade(CODE, model=model).message
    assert "head" in wrong_message and "frozen" in wrong_message

    nb.replace_cell_source(cell, freeze_all + check_line)
    nb.run_cell(cell)
    output = nb.cell_output(cell)
    expect(output).to_contain_text(wrong_message, timeout=60_000)
    nb.shot("code-wrong", output)
    nb.replace_cell_source(cell, bank_q.solution.rstrip("\n") + "\n" + check_line)
    nb.run_cell(cell)
    expect(output).to_contain_text(right_message, timeout=60_000)
    # The question's own widget, shown earlier by ex.ask, follows the latest check too.
    expect(nb.question(CODE).feedback).to_contain_text(right_message, timeout=30_000)
    nb.shot("code-right", output)


def _progress_file_holds_the_answers(cache: Path, engine, monkeypatch) -> None:
    from tlcourse.exercises import progress_path

    monkeypatch.setenv("TLCOURSE_CACHE", str(cache))
    path = progress_path(LEARNER)
    assert path.is_file(), f"no progress file at {path}: the checked answers were not saved"
    entries = json.loads(path.read_text(encoding="utf-8"))["entries"]

    def attempts(qid: str) -> list[tuple[object, bool]]:
        return [(e["answer"], e["correct"]) for e in entries if e["question"] == qid]

    choice, multi = engine.question(CHOICE), engine.question(MULTI)
    wrong_choice = next(o for o in choice.options if o != choice.answer)
    assert attempts(CHOICE) == [(wrong_choice, False), (choice.answer, True)]
    assert [c for _, c in attempts(MULTI)] == [False, True]
    assert sorted(attempts(MULTI)[1][0]) == sorted(multi.answers)
    numeric = float(engine.question(NUMERIC).answer)
    assert attempts(NUMERIC) == [(numeric - 15, False), (numeric, True)]
    # Run All checked the untouched code cell once (wrong), then the two edits: wrong, right.
    assert [c for _, c in attempts(CODE)] == [False, False, True]
    assert {e["learner"] for e in entries} == {LEARNER}
    assert {e["bank"] for e in entries} == {"03_freezing"}

    latest = {}
    for e in entries:
        latest[e["question"]] = e["correct"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "tlcourse", "progress", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("03_freezing"))
    total = len(engine)
    cells = row.split()
    assert cells[1] == f"{len(latest)}/{total}", proc.stdout  # answered
    assert cells[2] == f"{sum(latest.values())}/{total}", proc.stdout  # right (latest attempt)
    assert cells[4] == str(len(entries)), proc.stdout  # attempts
    assert f"Progress of {LEARNER}" in proc.stdout


def test_exam_mode_hides_reveal_solution(start_lab, course, page, engine, tmp_path):
    lab, _ = _start(start_lab, course, tmp_path, TLCOURSE_EXAM="1")
    nb = Notebook(page, SHOTS, "exam")
    nb.open(lab.url(f"lab/tree/{NOTEBOOK}"))
    nb.run_all(RUN_ALL_S)
    nb.assert_every_cell_ran()
    boxes = nb.question_boxes()
    expect(boxes).to_have_count(len(engine), timeout=30_000)
    expect(buttons(page, "Reveal solution").filter(visible=True)).to_have_count(0)
    # Everything else is still there: Check on every non-code question, Hint where there is one.
    answerable = [q for q in engine.bank if q.kind != "code"]
    expect(buttons(page, "Check").filter(visible=True)).to_have_count(len(answerable))
    q, bank_q = nb.question(CHOICE), engine.question(CHOICE)
    q.choose(_label(bank_q, bank_q.answer))
    q.check(bank_q.grade(bank_q.answer).message)
    nb.shot("no-reveal", q.box)
