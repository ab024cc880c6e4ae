"""Fixtures of the runner's tests: a private copy of the fixture course (runner_fixture.py),
and one CLI run of it shared by the tests that read its summary, its lines and its report."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from runner_fixture import FIXTURE, fixture_sources, private_course


@pytest.fixture
def course(tmp_path, monkeypatch) -> Path:
    return private_course(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory, python3_kernel):
    """``tlcourse run --profile smoke -p lr=0.5`` on the fixture course, run in place:
    ``(exit status, output folder, the sources before, what it printed)``."""
    from tlcourse.course.cli import main

    before = fixture_sources()
    out = tmp_path_factory.mktemp("run") / "out"
    saved_cwd = os.getcwd()
    saved_root = os.environ.pop("TLCOURSE_ROOT", None)
    os.chdir(FIXTURE)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            rc = main(["run", "--profile", "smoke", "-p", "lr=0.5", "--out", str(out)])
    finally:
        os.chdir(saved_cwd)
        if saved_root is not None:
            os.environ["TLCOURSE_ROOT"] = saved_root
    return rc, out, before, printed.getvalue()
