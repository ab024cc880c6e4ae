"""Every notebook, executed: lessons under papermill (`tlcourse run --profile smoke`) and then
nbval on the executed copies; exercise notebooks under nbval; solution notebooks under
papermill, where every answer must be checked correct.

These are the slow tests (a kernel start alone is ~10 s here); they run in CI on the CPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.notebooks


def _kernel() -> str:
    from tlcourse.course.runner import default_kernel

    return default_kernel()


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_under_papermill_with_smoke_parameters(smoke_run, path):
    """``smoke_run`` (tests/conftest.py) is shared with the site tests."""
    out, results = smoke_run
    result = results.get(path.name)
    assert result is not None, f"{path.name} was not run"
    assert result.status == "ok", f"{path.name} failed: {result.error}"
    summary = json.loads((out / "summary.json").read_text())
    entry = next(n for n in summary["notebooks"] if n["name"] == path.name)
    assert entry["results"].get("run", {}).get("environment", {}).get("torch"), "start_lesson() did not record the run"


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_exercise_notebook_runs_under_papermill_with_smoke_parameters(smoke_run, path):
    _, results = smoke_run
    result = results.get(f"exercises/{path.name}")
    assert result is not None, f"exercises/{path.name} was not run"
    assert result.status == "ok", f"exercises/{path.name} failed: {result.error}"


def _nbval(paths: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TLCOURSE_HEADLESS="1", TLCOURSE_BANKS=str(ROOT / "exercises" / "banks"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
           "--nbval-kernel-name", _kernel(), "--nbval-cell-timeout", "900",
           "--rootdir", str(cwd), "-c", os.devnull, *map(str, paths)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def test_executed_lessons_pass_nbval(smoke_run):
    """nbval re-executes the papermill outputs; cells tagged nbval-check-output must match."""
    out, results = smoke_run
    executed = sorted(out.glob("[0-9][0-9]_*.ipynb"))
    assert len(executed) == len(LESSONS)
    proc = _nbval(executed, out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.skipif(not EXERCISES, reason="no exercise notebooks yet")
def test_exercise_notebooks_pass_nbval():
    """The students' notebooks run top to bottom with nothing filled in (no hangs, no errors)."""
    proc = _nbval(EXERCISES, ROOT / "exercises")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_answers_every_question_correctly(path, tmp_path, monkeypatch):
    import papermill

    from tlcourse.exercises.bank import find_bank, load_bank
    from tlcourse.exercises.progress import read_entries

    progress = tmp_path / "progress.json"
    monkeypatch.setenv("TLCOURSE_HEADLESS", "1")
    monkeypatch.setenv("TLCOURSE_PROGRESS", str(progress))
    monkeypatch.setenv("TLCOURSE_BANKS", str(ROOT / "exercises" / "banks"))
    papermill.execute_notebook(str(path), str(tmp_path / path.name), kernel_name=_kernel(),
                               cwd=str(tmp_path), progress_bar=False)
    bank = load_bank(find_bank(path.stem))
    latest = {e["question"]: e["correct"] for e in read_entries(progress)}
    ids = [q.id for q in bank]
    missing = [q for q in ids if q not in latest]
    wrong = [q for q in ids if latest.get(q) is False]
    assert not missing, f"{path.name} never checks {missing}"
    assert not wrong, f"{path.name}'s solution is marked wrong for {wrong}"
