"""The sweep tests use the runner tests' fixture course (tests/course/runner/runner_fixture.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runner"))

from runner_fixture import private_course  # noqa: E402


@pytest.fixture
def course(tmp_path, monkeypatch) -> Path:
    return private_course(tmp_path, monkeypatch)
