"""Planning a sweep: every combination checked like ``tlcourse run -p`` before anything starts
(tlcourse/course/sweep/tasks.py, and run_sweep's order of checks). No kernel, no cluster."""
from __future__ import annotations

import pytest

from tlcourse.course.cli import main
from tlcourse.course.runner.plan import select_course
from tlcourse.course.sweep import cluster, run_sweep
from tlcourse.course.sweep.tasks import plan_tasks
from tlcourse.errors import InvalidParameterError


@pytest.fixture
def no_cluster(monkeypatch):
    """Starting a cluster fails the test: refusals must come before any task could start."""
    def refuse(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(cluster, "start_local", refuse)
    monkeypatch.setattr(cluster, "connect", refuse)
    import tlcourse.course.sweep as sweep

    monkeypatch.setattr(sweep, "start_local", refuse)
    monkeypatch.setattr(sweep, "connect", refuse)


def test_every_combination_of_every_selected_notebook_is_a_task(course):
    found = select_course(course, profile="smoke", only="alpha")
    tasks = plan_tasks(found, {"epochs": 3}, {"lr": [0.1, 0.2], "n_per_class": [1, 2]})
    assert [t.grid for t in tasks] == [{"lr": 0.1, "n_per_class": 1}, {"lr": 0.1, "n_per_class": 2},
                                       {"lr": 0.2, "n_per_class": 1}, {"lr": 0.2, "n_per_class": 2}]
    assert all(t.parameters["epochs"] == 3 and t.parameters["name"] == "from-profile"
               for t in tasks)
    assert len({t.folder for t in tasks}) == len({t.name for t in tasks}) == 4


def test_a_notebook_that_does_not_declare_a_key_runs_once(course):
    found = select_course(course, profile="smoke")  # 00_boom declares seed only
    tasks = plan_tasks(found, {}, {"lr": [0.1, 0.2]})
    assert [t.notebook for t in tasks] == ["00_boom.ipynb", "01_alpha.ipynb", "01_alpha.ipynb"]


@pytest.mark.parametrize(("grid", "message"), [
    ("lrr=0.1,0.2", "--grid lrr=... : no selected notebook declares a parameter 'lrr'. "
                    "Did you mean 'lr'?"),
    ("epochs=1,two", "'epochs' expects int (its default is 2), got 'two' (str) from --grid "
                     "epochs='two'"),
    ("n_per_class=1,0", "n_per_class=0 is not valid"),
])
def test_bad_grids_are_refused_before_anything_starts(course, no_cluster, monkeypatch, capsys,
                                                      grid, message):
    out = course / "sweep-out"
    monkeypatch.chdir(course)
    rc = main(["sweep", "--only", "alpha", "--profile", "smoke", "--grid", "name=a,b",
               "--grid", grid, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in " ".join(err.split())
    assert not out.exists()


def test_python_api_refuses_a_wrong_type_too(course, no_cluster):
    with pytest.raises(InvalidParameterError, match="expects float"):
        run_sweep(course, only="alpha", profile="smoke", grid={"lr": [0.1, "fast"]},
                  out=course / "never")
    assert not (course / "never").exists()


def test_resume_takes_no_new_sweep_options(course, capsys):
    rc = main(["sweep", "--resume", str(course), "--grid", "seed=1,2"])
    assert rc == 2
    assert "takes no --grid" in capsys.readouterr().err
