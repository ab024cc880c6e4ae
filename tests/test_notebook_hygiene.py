"""Committed notebooks: no outputs, one parameters cell, the standard kernel, in sync."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("[0-9][0-9]_*.ipynb"))
ALL = LESSONS + EXERCISES + SOLUTIONS


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_course_has_its_first_lesson():
    assert ROOT / "notebooks" / "00_golden_rule.ipynb" in LESSONS


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_committed_notebook_carries_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{_id(path)}: cells {dirty} have outputs; clear them (`jupyter nbconvert --clear-output --inplace`)."


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_one_parameters_cell_and_standard_kernel(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{_id(path)}: {len(tagged)} cells tagged 'parameters'; need exactly one."
    assert nb.cells[tagged[0]].cell_type == "code"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    nbformat.validate(nb)


@pytest.mark.parametrize("path", EXERCISES, ids=_id)
def test_every_exercise_has_a_solution_and_a_bank(path):
    assert (ROOT / "exercises" / "solutions" / path.name).is_file()
    assert (ROOT / "exercises" / "banks" / f"{path.stem}.yaml").is_file()


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_every_lesson_has_an_exercise_notebook(path):
    assert (ROOT / "exercises" / path.name).is_file(), f"{_id(path)} has no exercises/{path.name}"


def test_students_notebooks_are_built_from_the_solutions():
    from tlcourse.exercises.build import check_in_sync

    assert check_in_sync(ROOT / "exercises") == []
