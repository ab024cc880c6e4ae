"""Every course notebook's parameters cell reads the same to papermill and to Python
(tlcourse/course/runner/parameters.py).

papermill does not parse a parameters cell as Python: it reads one ``name = value  # help``
per line and gives up (with only a logged warning) on a line holding a second ``=``, e.g. in
its comment. A parameter it cannot see is one that no profile and no ``-p`` can set: the
smoke profile once trained lesson 07 on the whole training split that way. These tests hold
papermill's own inspection (``papermill.inspect_notebook``, what ``papermill --help-notebook``
prints) against the runner's reading of the same cell with Python's parser. Nothing executes.
"""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import nbformat
import pytest

from runner_fixture import REPO
from tlcourse.course.runner import (
    cell_assignments,
    declared_parameters,
    parameters_cell,
    prepare_run,
)
from tlcourse.errors import CourseError, InvalidParameterError

NOTEBOOKS = sorted(
    [*REPO.glob("notebooks/*.ipynb"), *REPO.glob("exercises/*.ipynb"),
     *REPO.glob("exercises/solutions/*.ipynb")]
)


def _same_expression(a: str, b: str) -> bool:
    """Two default sources mean the same value (papermill drops comments inside a multi-line
    value and joins its lines, so compare parsed expressions, not text)."""
    try:
        return ast.dump(ast.parse(a.strip(), mode="eval")) == ast.dump(ast.parse(b.strip(), mode="eval"))
    except SyntaxError:
        return False


def test_the_course_has_notebooks_with_parameters():
    with_cells = [p for p in NOTEBOOKS if parameters_cell(nbformat.read(p, as_version=4))]
    # every lesson but none-at-all, every exercise and solution: the test below covers them all
    assert len(NOTEBOOKS) >= 28 and len(with_cells) >= 27, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_papermill_and_python_see_the_same_parameters(path: Path, caplog):
    import papermill

    cell = parameters_cell(nbformat.read(path, as_version=4))
    if cell is None:
        pytest.skip("no cell tagged 'parameters'")
    with caplog.at_level(logging.DEBUG, logger="papermill"):
        seen_by_papermill = papermill.inspect_notebook(str(path))
    warnings = [r.getMessage() for r in caplog.records
                if r.name.startswith("papermill") and r.levelno >= logging.WARNING]
    assert warnings == []  # e.g. "Unable to parse line 3 'n_per_class = None  # ... None = ...'"

    seen_by_python = cell_assignments(cell.source)
    assert list(seen_by_papermill) == list(seen_by_python)
    for name, info in seen_by_papermill.items():
        assert _same_expression(info["default"], seen_by_python[name].source), (
            name, info["default"], seen_by_python[name].source)

    # and the runner, which checks profiles and -p values against this, agrees too
    declared = declared_parameters(path)
    assert {n: d.default_source for n, d in declared.items()} == {
        n: info["default"] for n, info in seen_by_papermill.items()}


def _notebook(tmp_path: Path, source: str) -> Path:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "07_x.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('epochs = 2\nn_per_class = None  # None = the whole split\nseed = 0\n',
         "line 2 (n_per_class = None  # None = the whole split): papermill cannot see "
         "'n_per_class'"),
        ("a = b = 1\n", "line 1 (a = b = 1): papermill cannot see 'a', 'b'"),
    ],
)
def test_a_parameter_papermill_cannot_see_is_refused(tmp_path, caplog, source, expected):
    path = _notebook(tmp_path, source)
    before = path.read_bytes()
    with caplog.at_level(logging.DEBUG, logger="papermill"):
        with pytest.raises(CourseError) as info:
            declared_parameters(path)
    message = str(info.value)
    assert str(path) in message and expected in message
    assert "'=' only once per line" in message  # what to change
    assert path.read_bytes() == before
    # the runner's own error replaces papermill's log line, which would only repeat it
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()]


def test_a_parameters_cell_that_is_not_python_is_refused(tmp_path):
    path = _notebook(tmp_path, "epochs = 2\nlr = 1e-3 +\n")
    with pytest.raises(CourseError, match=r"parameters cell of .*07_x.ipynb is not valid Python "
                                          r"\(line 2"):
        declared_parameters(path)


def test_lesson_07_takes_n_per_class_from_the_profile_and_the_command_line():
    smoke = prepare_run(REPO, profile="smoke", only="07_case")
    assert [nb.label for nb in smoke.notebooks] == ["07_case_plant_disease.ipynb"]
    assert smoke.notebooks[0].parameters["n_per_class"] == 8  # smoke's, not the whole split
    given = prepare_run(REPO, profile="smoke", only="07_case", parameters=["n_per_class=20"])
    assert given.notebooks[0].parameters["n_per_class"] == 20


def test_types_inferred_from_inspect_notebook(tmp_path):
    import nbformat

    cell = nbformat.v4.new_code_cell(
        'device = "auto"  # auto / cpu / cuda\nepochs = 2\nlr = 1e-3\nn_per_class = None\n'
        "augment = True\nsizes = [64, 128]\nsteps = 2 ** 3\nratio: float = 1\n"
        "limit: Optional[int] = 5\nnested: list[list[int]] = []\n"
    )
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "00_x.ipynb"
    nbformat.write(nb, path)
    declared = declared_parameters(path)
    assert {n: d.type_label for n, d in declared.items()} == {
        "device": "str", "epochs": "int", "lr": "float (an int is fine)",
        "n_per_class": "any value", "augment": "bool", "sizes": "list",
        "steps": "any value", "ratio": "float (an int is fine)", "limit": "int",
        "nested": "list",
    }
    assert declared["device"].help == "auto / cpu / cuda"
    assert declared["device"].default_source == '"auto"'
    assert not declared["augment"].accepts(1) and not declared["epochs"].accepts(True)
    assert declared["lr"].accepts(1) and declared["epochs"].accepts(None)


def test_exercise_without_kernelspec_is_inspected(course):
    declared = declared_parameters(course / "exercises" / "00_alpha.ipynb")
    assert {n: d.type_label for n, d in declared.items()} == {"epochs": "int", "level": "str"}
    with pytest.raises(InvalidParameterError, match="exercises/00_alpha.ipynb: parameter 'level'"):
        prepare_run(course, exercises=True, only="exercises/", parameters=["level=3"])
