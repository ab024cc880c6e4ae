"""Where the runner tests' fixture course lives, and its notebooks byte for byte.

The fixture course (tests/fixtures/notebooks/course) has two lessons and one exercise:
``00_boom`` records a value and then divides by zero, ``01_alpha`` records its parameters and a
figure, ``exercises/00_alpha`` has no kernelspec (papermill's inspect_notebook needs one, so
the runner's fallback reads it).
"""
from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "fixtures" / "notebooks" / "course"
SOURCES = sorted(FIXTURE.rglob("*.ipynb"))


def fixture_sources() -> dict[Path, bytes]:
    """The fixture course's notebooks, byte for byte (a run must never write them)."""
    return {path: path.read_bytes() for path in SOURCES}


def private_course(tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the fixture course, with no course root or results file inherited from
    the environment (default output dirs land inside it). The runner and sweep tests' fixture."""
    from tlcourse.course import results

    monkeypatch.delenv("TLCOURSE_ROOT", raising=False)
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    root = tmp_path / "course"
    shutil.copytree(FIXTURE, root)
    return root
