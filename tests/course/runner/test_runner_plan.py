"""Every check made before a kernel starts, and the values each notebook gets
(tlcourse/course/runner/plan.py). Nothing here starts a kernel."""
from __future__ import annotations

from pathlib import Path

import pytest

from filesnap import course_sources
from runner_fixture import REPO
from tlcourse.course.cli import main
from tlcourse.course.runner import prepare_run, run_course
from tlcourse.errors import InvalidParameterError


def test_unknown_parameter_lists_valid_ones(course, monkeypatch, capsys):
    monkeypatch.chdir(course)
    rc = main(["run", "-p", "epocs=3", "--out", str(course / "never")])
    err = capsys.readouterr().err
    assert rc != 0
    assert "'epocs'" in err and "Did you mean 'epochs'?" in err
    assert "Valid parameters: epochs, lr, n_per_class, name, seed." in err
    assert not (course / "never").exists()


def test_unknown_parameter_is_judged_on_selected_notebooks(course):
    with pytest.raises(InvalidParameterError, match="Valid parameters: seed"):
        prepare_run(course, only="boom", parameters=["lr=0.1"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("epochs=three", "'epochs' expects int (its default is 2), got 'three' (str) from -p epochs"),
        ("epochs=2.5", "'epochs' expects int"),
        ("lr=true", "'lr' expects float (an int is fine) (its default is 0.1), got True (bool)"),
        ("name=5", "'name' expects str"),
        ("epochs=0", "epochs=0 is not valid: epochs must be an integer >= 1"),
    ],
)
def test_wrong_type_or_range_refused(course, override, expected):
    with pytest.raises(InvalidParameterError) as info:
        prepare_run(course, parameters=[override])
    assert "01_alpha.ipynb" in str(info.value) and expected in str(info.value)


def test_accepted_values_and_what_each_notebook_gets(course):
    plan = prepare_run(course, profile="smoke", parameters=["lr=1", "n_per_class=None"],
                       exercises=True)
    got = {nb.label: nb.parameters for nb in plan.notebooks}
    assert list(got) == ["00_boom.ipynb", "01_alpha.ipynb", "exercises/00_alpha.ipynb"]
    assert got["01_alpha.ipynb"] == {"epochs": 1, "name": "from-profile", "lr": 1,
                                     "n_per_class": None}
    assert got["exercises/00_alpha.ipynb"] == {"epochs": 1}
    assert got["00_boom.ipynb"] == {"seed": 3}


def test_unknown_notebook_and_profile_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TLCOURSE_ROOT", str(REPO))
    before = course_sources()
    out = tmp_path / "run"
    assert main(["run", "--profile", "smoke", "--only", "99_no_such_lesson", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--only '99_no_such_lesson' matches no notebook" in err
    assert "00_golden_rule.ipynb" in err  # the valid notebooks are listed
    assert main(["run", "--profile", "classrom", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Unknown profile 'classrom'" in err and "classroom, full, smoke" in err
    assert not out.exists()
    assert course_sources() == before


def test_bad_papermill_parameters_are_refused_before_any_work(tmp_path: Path) -> None:
    before = course_sources()
    out = tmp_path / "run"
    with pytest.raises(InvalidParameterError) as info:
        run_course(REPO, profile="smoke", only="00", out=out, progress=False,
                   parameters=["epochs=-1", "image_size=0", "batch_size=many"])
    message = str(info.value)
    assert message.startswith("Nothing was run")
    assert "epochs=-1 is not valid: epochs must be an integer >= 1" in message
    assert "image_size=0 is not valid: image_size must be an integer from 32 to 1024" in message
    assert "parameter 'batch_size' expects int" in message and "'many' (str)" in message
    assert "(from -p epochs)" in message  # where each bad value came from
    assert not out.exists()  # no kernel started, no output folder made
    assert course_sources() == before


def test_each_unknown_name_message_says_where_the_closest_name_and_the_valid_ones(course):
    bad = course / "named.yaml"
    cases = {
        "smoke:\n  defaults:\n    sed: 1\n": (
            f"profile 'smoke' in {bad} sets 'sed' under 'defaults:', but no notebook declares it "
            "and it is not a common parameter. Did you mean 'seed'? Valid parameters: "
            "backbone, batch_size, data_dir, dataset, device, epochs, image_size, level, lr, max_images, "
            "n_per_class, name, seed."),
        "smoke:\n  notebooks:\n    '01_*': {nam: x}\n": (
            f"profile 'smoke' in {bad}: 'notebooks:' entry '01_*' sets 'nam', which none of "
            "01_alpha.ipynb declares. Did you mean 'name'? Valid parameters there: epochs, lr, "
            "n_per_class, name."),
    }
    for text, expected in cases.items():
        bad.write_text(text)
        with pytest.raises(InvalidParameterError) as info:
            prepare_run(course, profile="smoke", profiles_file=bad)
        assert str(info.value) == expected
    with pytest.raises(InvalidParameterError) as info:
        prepare_run(course, only="alpha", parameters=["sed=1"])
    assert str(info.value) == ("-p sed=... : no selected notebook declares a parameter 'sed'. "
                               "Valid parameters: epochs, lr, n_per_class, name.")
