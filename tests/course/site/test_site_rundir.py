"""Reading a run folder for the site: what is shown, and every folder that is refused."""
from __future__ import annotations

import json
import os

import pytest

from site_fixture import tiny_run
from tlcourse.course.site import read_run
from tlcourse.errors import CourseError


def _edit_summary(run, change):
    path = run / "summary.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_lessons_and_exercises_with_their_results(tmp_path):
    run = read_run(tiny_run(tmp_path / "run"))
    assert [nb.relpath for nb in run.lessons] == ["00_tiny.ipynb"]
    assert [nb.relpath for nb in run.exercises] == ["exercises/01_tiny.ipynb"]
    assert run.lessons[0].values["val_accuracy"] == pytest.approx(0.912345)
    assert run.environment["device"] == "cpu"


@pytest.mark.parametrize("what, expected", [
    ("missing", "no such folder"), ("file", "not a run folder"), ("empty", "has no summary.json"),
    ("not json", "cannot be read"), ("list", "not a JSON object"), ("no notebooks key", "lacks notebooks"),
])
def test_a_folder_that_is_not_a_run_is_refused(tmp_path, what, expected):
    target = tmp_path / "x"
    if what == "file":
        target.write_text("hello")
    elif what != "missing":
        target.mkdir()
        summary = {"not json": "{", "list": "[]",
                   "no notebooks key": json.dumps({"profile": "smoke", "started": "now"})}.get(what)
        if summary is not None:
            (target / "summary.json").write_text(summary)
    with pytest.raises(CourseError, match=expected) as info:
        read_run(target)
    assert "tlcourse site` takes the output folder of a `tlcourse run`" in str(info.value)


@pytest.mark.parametrize("output", ["../outside.ipynb", "/etc/passwd", "exercises/../../x.ipynb",
                                    "sub/dir/00_x.ipynb", "notes.txt", "exercises\\00_x.ipynb"])
def test_a_notebook_path_leaving_the_run_folder_is_refused(tmp_path, output):
    run = tiny_run(tmp_path / "run")
    _edit_summary(run, lambda d: d["notebooks"][0].update(output=output))
    with pytest.raises(CourseError, match="not an NN_name.ipynb file of the run folder"):
        read_run(run)


def test_a_notebook_that_links_outside_the_run_folder_is_refused(tmp_path):
    run = tiny_run(tmp_path / "run")
    outside = tmp_path / "elsewhere.ipynb"
    os.replace(run / "00_tiny.ipynb", outside)
    (run / "00_tiny.ipynb").symlink_to(outside)
    with pytest.raises(CourseError, match="is a link to .*outside the run folder"):
        read_run(run)


def test_an_unknown_status_is_refused(tmp_path):
    run = tiny_run(tmp_path / "run")
    _edit_summary(run, lambda d: d["notebooks"][0].update(status="<b>ok</b>"))
    with pytest.raises(CourseError, match="unknown status"):
        read_run(run)


def test_a_run_that_wrote_no_notebook_is_refused(tmp_path):
    run = tiny_run(tmp_path / "run")
    (run / "00_tiny.ipynb").unlink()
    (run / "exercises" / "01_tiny.ipynb").unlink()
    with pytest.raises(CourseError, match="none of the notebooks its summary lists was written"):
        read_run(run)


def test_a_notebook_not_written_is_left_out(tmp_path):
    run = tiny_run(tmp_path / "run")
    (run / "exercises" / "01_tiny.ipynb").unlink()
    assert [nb.relpath for nb in read_run(run).notebooks] == ["00_tiny.ipynb"]
