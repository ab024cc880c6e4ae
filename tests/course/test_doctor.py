"""`tlcourse doctor`: its checks, each failing with its fix on a machine that needs one.

The widget check: ipywidgets and JupyterLab's widget manager must match. A mismatch (say
ipywidgets 8 with jupyterlab_widgets 1) imports fine and fails only in the browser, as "Error
displaying widget" where the exercise should be; the doctor is the one place that can say so
before a learner opens a notebook.

The torch cache: a ``TORCH_HOME`` that cannot be written gives a failed check with its fix.
Tests run as root (here and in CI), so a folder cannot be made unwritable with chmod; a path
*under a regular file* cannot be created by anyone, which is what the test uses.
``tlcourse predict`` on hostile photos is tests/deploy/test_predict.py and test_images.py.
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from filesnap import snapshot
from tlcourse.course.cli import main
from tlcourse import precision
from tlcourse.course.doctor import _widget_frontend_check, precision_check, widget_frontend_problem


@pytest.mark.parametrize("ipywidgets, frontend", [("8.1.9", "3.0.17"), ("8.0.0", "3.0.0"), ("7.8.5", "1.1.10"),
                                                  ("8.2.0rc1", "3.1.0a2")])
def test_matching_pairs_pass(ipywidgets, frontend):
    assert widget_frontend_problem(ipywidgets, frontend) is None


def test_ipywidgets_8_with_the_old_front_end_names_both_versions_and_the_pip_fix():
    problem = widget_frontend_problem("8.1.9", "1.1.7", python="/venv/bin/python")
    assert problem is not None
    assert "ipywidgets 8.1.9 needs jupyterlab_widgets 3.x" in problem and "1.1.7 is installed" in problem
    assert '/venv/bin/python -m pip install "jupyterlab_widgets>=3,<4"' in problem
    assert "Error displaying widget" in problem


def test_ipywidgets_7_with_the_new_front_end_is_fixed_by_the_courses_ipywidgets():
    problem = widget_frontend_problem("7.8.5", "3.0.17", python="py")
    assert problem is not None and "ipywidgets 7.8.5 needs jupyterlab_widgets 1.x" in problem
    assert 'py -m pip install "ipywidgets>=8,<9"' in problem  # not a downgrade of the front-end


def test_missing_front_end_or_ipywidgets_says_what_to_install():
    missing = widget_frontend_problem("8.1.9", None, python="py")
    assert missing is not None and "jupyterlab_widgets 3.x" in missing
    assert 'py -m pip install "jupyterlab_widgets>=3,<4"' in missing
    none = widget_frontend_problem(None, "3.0.17", python="py")
    assert none is not None and 'py -m pip install "ipywidgets>=8,<9"' in none


@pytest.mark.parametrize("ipywidgets", ["9.0.0", "6.0.0", "unknown"])
def test_an_ipywidgets_the_doctor_does_not_know_is_not_passed(ipywidgets):
    problem = widget_frontend_problem(ipywidgets, "3.0.17", python="py")
    assert problem is not None and ipywidgets in problem
    assert 'py -m pip install "ipywidgets>=8,<9"' in problem


def test_the_doctor_reports_this_environments_pair():
    check = _widget_frontend_check()
    pair = f"ipywidgets {version('ipywidgets')} with jupyterlab_widgets {version('jupyterlab_widgets')}"
    assert check.ok and check.detail == pair and not check.required


# ----------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("units", [True, False])
def test_the_doctor_says_whether_lessons_will_train_in_bfloat16(units, monkeypatch):
    import torch

    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: units)
    check = precision_check(torch.device("cpu"))
    assert check.ok and not check.required and check.name == "mixed precision"
    expected = "has bfloat16 units: lessons with precision=\"auto\" train in bfloat16" if units else \
        "has no bfloat16 units: precision=\"auto\" computes in float32"
    assert expected in check.detail


# ----------------------------------------------------------------------------- the torch cache


def test_doctor_with_an_unwritable_torch_cache_reports_a_failed_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "torch-home-is-a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("TORCH_HOME", str(blocker / "hub"))
    before = snapshot(tmp_path)
    code = main(["doctor"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    weights = [line for line in out.splitlines() if "weights mobilenet_v2" in line]
    assert len(weights) == 1 and weights[0].startswith("FAIL"), out
    assert f"{blocker} is a file, not a folder" in weights[0]  # what is wrong, where
    assert "TORCH_HOME" in weights[0] and "tlcourse doctor" in weights[0]  # and how to fix it
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert f"\n{len(failed)} problem(s) stop the course from running" in out
    assert "Traceback" not in out + err
    assert snapshot(tmp_path) == before  # the file in the way is untouched, nothing half-copied
