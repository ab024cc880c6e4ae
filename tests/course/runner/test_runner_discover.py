"""Finding the course and selecting its notebooks (tlcourse/course/runner/discover.py)."""
from __future__ import annotations

import pytest

from tlcourse.course.runner import find_root, prepare_run
from tlcourse.errors import CourseError


def test_find_root_walks_up_and_honours_env(course, monkeypatch):
    assert find_root(course / "exercises") == course.resolve()
    monkeypatch.setenv("TLCOURSE_ROOT", str(course))
    assert find_root("/") == course.resolve()
    monkeypatch.setenv("TLCOURSE_ROOT", str(course / "exercises"))
    with pytest.raises(CourseError, match="no notebooks/ directory"):
        find_root()


def test_unknown_profile_and_only_matching_nothing(course):
    with pytest.raises(CourseError, match="Valid profiles: classroom, smoke"):
        prepare_run(course, profile="ful")
    with pytest.raises(CourseError, match="Notebooks: 00_boom.ipynb, 01_alpha.ipynb"):
        prepare_run(course, only="zzz")
    assert [nb.label for nb in prepare_run(course, only="0[01]_a*").notebooks] == [
        "01_alpha.ipynb"]
    assert [nb.label for nb in prepare_run(course, only="boom,alpha").notebooks] == [
        "00_boom.ipynb", "01_alpha.ipynb"]
