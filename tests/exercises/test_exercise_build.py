"""Solution notebooks -> student notebooks: solutions stripped, cells still runnable, kept in sync."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tlcourse.course.cli import main as cli_main
from tlcourse.exercises.build import (
    ANSWERS_PLACEHOLDER,
    PLACEHOLDER,
    BuildError,
    build,
    check_in_sync,
    strip_source,
)


# --------------------------------------------------------------------------- building student notebooks


SOLUTION_CELLS = [
    ("markdown", "# Tiny exercise\nFreeze the model."),
    ("code", 'answers = {\n    # BEGIN SOLUTION\n    "q1": "b",\n    "q3": 3843,\n    # END SOLUTION\n}'),
    ("code", "def double(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n\nresult = double(4)"),
    ("code", "# BEGIN SOLUTION\nsecret = 42\n# END SOLUTION\nprint('done')"),
]


def _solution_notebook(root: Path, name: str = "01_tiny.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    for kind, src in SOLUTION_CELLS:
        cell = nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        if kind == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="old output\n")]
            cell.execution_count = 3
        nb.cells.append(cell)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["widgets"] = {"state": {}}
    path = root / "solutions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_strip_source_placeholders_keep_cells_runnable():
    src = SOLUTION_CELLS[1][1]
    assert strip_source(src) == f"answers = {{\n    {ANSWERS_PLACEHOLDER}\n}}"
    fn = strip_source(SOLUTION_CELLS[2][1])
    assert fn.splitlines()[1] == f"    {PLACEHOLDER}"
    namespace: dict = {}
    exec(strip_source(src) + "\n" + fn, namespace)  # noqa: S102 - the point: it runs
    assert namespace["answers"] == {} and namespace["result"] is None
    with pytest.raises(BuildError, match="never closed"):
        strip_source("# BEGIN SOLUTION\nx = 1")
    with pytest.raises(BuildError, match="without a '# BEGIN SOLUTION'"):
        strip_source("x = 1\n# END SOLUTION")
    with pytest.raises(BuildError, match="inside the block opened at line 1"):
        strip_source("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION")


def test_build_writes_student_notebooks_and_check_in_sync(tmp_path, capsys):
    root = tmp_path / "exercises"
    sol = _solution_notebook(root)
    assert [p.name for p in build(root)] == ["01_tiny.ipynb"]
    student = nbformat.read(root / "01_tiny.ipynb", as_version=4)
    code = [c for c in student.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "3843" not in "".join(c.source for c in code) and "secret" not in code[2].source
    assert code[2].source == f"{PLACEHOLDER}\nprint('done')"
    assert student.cells[1].metadata["tags"] == ["parameters"] and "widgets" not in student.metadata
    assert check_in_sync(root) == [] and build(root) == []
    # The solution changes: the student notebook is stale until rebuilt.
    nb = nbformat.read(sol, as_version=4)
    nb.cells[3].source = nb.cells[3].source.replace("done", "finished")
    nbformat.write(nb, sol)
    assert any("out of date" in p for p in check_in_sync(root))
    assert cli_main(["exercises", "build", "--check", "--dir", str(root)]) == 1
    assert cli_main(["exercises", "build", "--dir", str(root)]) == 0
    assert cli_main(["exercises", "build", "--check", "--dir", str(root)]) == 0
    (root / "02_orphan.ipynb").write_text((root / "01_tiny.ipynb").read_text())
    (root / "01_tiny.ipynb").unlink()
    problems = check_in_sync(root)
    assert any("01_tiny.ipynb is missing" in p for p in problems)
    assert any("02_orphan.ipynb has no solution notebook" in p for p in problems)
    capsys.readouterr()


def test_build_refuses_markers_that_break_the_cell(tmp_path):
    root = tmp_path / "exercises"
    path = _solution_notebook(root)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("x = (1 +\n# BEGIN SOLUTION\n2)\n# END SOLUTION"))
    nbformat.write(nb, path)
    with pytest.raises(BuildError, match="cell 4: without its solution the cell is not valid Python"):
        build(root)
    assert not (root / "01_tiny.ipynb").exists()
