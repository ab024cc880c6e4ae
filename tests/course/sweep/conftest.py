"""The sweep tests use the runner tests' fixture course (tests/course/runner/runner_fixture.py)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runner"))

from runner_fixture import FIXTURE  # noqa: E402
from tlcourse.course import results  # noqa: E402


@pytest.fixture
def course(tmp_path, monkeypatch) -> Path:
    """A private copy of the fixture course."""
    monkeypatch.delenv("TLCOURSE_ROOT", raising=False)
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    root = tmp_path / "course"
    shutil.copytree(FIXTURE, root)
    return root
