"""A task's files stored under --out all at once (tlcourse/course/sweep/store.py)."""
from __future__ import annotations

import pytest

from tlcourse.course.sweep.store import store_files
from tlcourse.errors import CourseError


def test_files_land_in_the_task_folder_and_replace_an_earlier_attempt(tmp_path):
    store_files(tmp_path, "t0", {"a.ipynb": b"old", "stale.png": b"x"})
    target = store_files(tmp_path, "t0", {"a.ipynb": b"new", "runs/model.pt2": b"m"})
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) \
        == ["a.ipynb", "runs/model.pt2"]
    assert (target / "a.ipynb").read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "tasks").iterdir()) == ["t0"]  # no partials left


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b", "", "./a", "a//b", "..\\escape.txt",
                                  "a\0b"])
def test_a_file_name_leaving_the_task_folder_is_refused_and_nothing_is_written(tmp_path, name):
    with pytest.raises(CourseError, match="not a plain path inside the task's folder"):
        store_files(tmp_path, "t0", {"ok.txt": b"1", name: b"2"})
    assert list((tmp_path / "tasks").iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()
