"""Executing the notebooks (tlcourse/course/runner/execute.py): the shared CLI run of the
fixture course (conftest.py) and one run from inside the course folder."""
from __future__ import annotations

import json
import os
import re

from runner_fixture import FIXTURE, SOURCES, fixture_sources
from tlcourse.course.cli import main
from tlcourse.course import results


def test_cli_run_exit_code_and_sources_untouched(cli_run, capsys):
    rc, out, before, _ = cli_run
    assert rc == 1  # 00_boom failed
    assert fixture_sources() == before
    assert sorted(FIXTURE.rglob("*.ipynb")) == SOURCES  # nothing written next to the sources
    assert not any(FIXTURE.rglob("*.results.json"))
    assert results.RESULTS_ENV not in os.environ and results.HEADLESS_ENV not in os.environ


def test_a_line_per_notebook_with_error_and_partial_output(cli_run):
    out, printed = cli_run[1], cli_run[3]
    assert re.search(r"^FAILED  00_boom\.ipynb +\d+\.\d s$", printed, re.M)
    assert re.search(r"^ok      01_alpha\.ipynb +\d+\.\d s$", printed, re.M)
    assert "\n        ZeroDivisionError: division by zero\n" in printed
    assert f"partially executed notebook: {out / '00_boom.ipynb'}" in printed
    assert "1 ok, 1 failed" in printed


def test_cli_prints_a_line_per_notebook(python3_kernel, course, monkeypatch, capsys):
    monkeypatch.chdir(course / "notebooks")  # the root is found upward from here
    rc = main(["run", "--only", "alpha", "-p", "epochs=3", "--timeout", "0"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert re.search(r"^ok {6}01_alpha\.ipynb +\d+\.\d s$", captured.out, re.M)
    assert "FAILED" not in captured.out and "no per-cell timeout" in captured.out
    runs = list((course / "runs").iterdir())  # default output: <root>/runs/<timestamp>/
    assert len(runs) == 1 and re.fullmatch(r"\d{8}-\d{6}", runs[0].name)
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["profile"] == "classroom" and summary["timeout"] is None
    (alpha,) = summary["notebooks"]
    assert alpha["results"]["values"]["epochs"] == 3
    assert alpha["results"]["values"]["name"] == "x"  # classroom: the notebook's own default
