"""Solution notebooks -> student notebooks.

Authors write one notebook per exercise set, *with* the solutions:
``exercises/solutions/NN_name.ipynb``. Solution code sits between two marker lines::

    # BEGIN SOLUTION
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("classifier.")
    # END SOLUTION

:func:`build` writes the student version ``exercises/NN_name.ipynb`` with every block replaced
by ``...  # YOUR CODE HERE`` (same indentation) and every output cleared. The placeholder is a
statement that runs, not ``raise NotImplementedError``, so unanswered student notebooks still
execute headless (papermill, nbval, ``tlcourse run --exercises``). Inside an open bracket (the
``answers = {...}`` parameters dict) the block becomes the comment ``# YOUR ANSWERS HERE``,
because ``{...}`` would be a *set* holding ``Ellipsis``.

:func:`check_in_sync` (``tlcourse exercises build --check``, for CI) reports student notebooks
that are missing, out of date, or have no solution notebook.
"""
from __future__ import annotations

import ast
import copy
import io
import os
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CourseError
from .progress import atomic_write_text

BEGIN = re.compile(r"^\s*#\s*BEGIN SOLUTION\b")
END = re.compile(r"^\s*#\s*END SOLUTION\b")
PLACEHOLDER = "...  # YOUR CODE HERE"
ANSWERS_PLACEHOLDER = "# YOUR ANSWERS HERE"
_CELL_METADATA_DROPPED = ("execution", "papermill", "collapsed", "scrolled")
_NOTEBOOK_METADATA_DROPPED = ("widgets", "papermill")


class BuildError(CourseError):
    """A solution notebook's markers are unbalanced, or stripping them breaks a cell."""


def _open_brackets(code: str) -> int:
    """How many brackets are still open at the end of ``code`` (0 for complete code)."""
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.OP:
                if tok.string in "([{":
                    depth += 1
                elif tok.string in ")]}":
                    depth -= 1
    except (tokenize.TokenError, SyntaxError):  # EOF inside the open bracket: what we measure
        pass
    return max(depth, 0)


def strip_source(source: str, where: str = "cell") -> str:
    """``source`` with each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block replaced."""
    lines = source.split("\n")
    out: list[str] = []
    begin: int | None = None
    for i, line in enumerate(lines, start=1):
        if BEGIN.match(line):
            if begin is not None:
                raise BuildError(
                    f"{where}, line {i}: '# BEGIN SOLUTION' inside the block opened at line {begin}; "
                    "close that one with '# END SOLUTION' first."
                )
            begin = i
            indent = line[: len(line) - len(line.lstrip())]
            inside_brackets = _open_brackets("\n".join(out)) > 0
            out.append(indent + (ANSWERS_PLACEHOLDER if inside_brackets else PLACEHOLDER))
        elif END.match(line):
            if begin is None:
                raise BuildError(f"{where}, line {i}: '# END SOLUTION' without a '# BEGIN SOLUTION' before it.")
            begin = None
        elif begin is None:
            out.append(line)
    if begin is not None:
        raise BuildError(f"{where}, line {begin}: '# BEGIN SOLUTION' is never closed by '# END SOLUTION'.")
    return "\n".join(out)


def _python_part(source: str) -> str:
    """The cell without IPython magics / shell lines, which ``ast`` cannot parse."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def strip_notebook(nb: Any, where: str = "notebook") -> Any:
    """A student copy of solution notebook ``nb``: solutions replaced, outputs cleared."""
    student = copy.deepcopy(nb)
    for index, cell in enumerate(student.cells):
        for key in _CELL_METADATA_DROPPED:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        label = f"{where}, cell {index}"
        original = cell.source
        cell.source = strip_source(original, label)
        cell.outputs = []
        cell.execution_count = None
        if cell.source != original and not cell.source.lstrip().startswith("%%"):
            try:
                ast.parse(_python_part(cell.source))
            except SyntaxError as exc:
                raise BuildError(
                    f"{label}: without its solution the cell is not valid Python ({exc.msg}, line "
                    f"{exc.lineno}). Move the markers so that whole statements sit between them."
                ) from exc
    for key in _NOTEBOOK_METADATA_DROPPED:
        student.metadata.pop(key, None)
    return student


def render(nb: Any) -> str:
    """The notebook as the text committed to git (stable, so ``--check`` can compare)."""
    import nbformat

    return nbformat.writes(nb, version=4) + "\n"


# --------------------------------------------------------------------------- the exercises folder


def _package_repo() -> Path:
    return Path(__file__).resolve().parents[2]


def exercises_dir() -> Path:
    """The ``exercises/`` folder: found from the working directory upwards, else the checkout."""
    here = Path.cwd()
    for d in (here, *here.parents):
        if d.name == "exercises" and ((d / "solutions").is_dir() or (d / "banks").is_dir()):
            return d
        if (d / "exercises" / "solutions").is_dir() or (d / "exercises" / "banks").is_dir():
            return d / "exercises"
    return _package_repo() / "exercises"


@dataclass(frozen=True)
class Planned:
    """One student notebook to write: from which solution, and its text."""

    solution: Path
    student: Path
    text: str


def plan(directory: str | os.PathLike[str] | None = None) -> list[Planned]:
    """The student notebooks that ``solutions/*.ipynb`` in ``directory`` produce."""
    import nbformat

    root = Path(directory) if directory is not None else exercises_dir()
    if not root.is_dir():
        raise BuildError(
            f"No exercises folder at {root}. Run from the repository, or pass the folder that "
            "holds solutions/ (--dir)."
        )
    solutions = root / "solutions"
    out: list[Planned] = []
    for sol in sorted(solutions.glob("*.ipynb")):
        try:
            nb = nbformat.read(sol, as_version=4)
        except Exception as exc:  # nbformat raises several types for unreadable files
            raise BuildError(f"Cannot read solution notebook {sol}: {exc}") from exc
        out.append(Planned(sol, root / sol.name, render(strip_notebook(nb, str(sol)))))
    return out


def build(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write every student notebook that is missing or stale; return the paths written."""
    written = []
    for item in plan(directory):
        current = item.student.read_text(encoding="utf-8") if item.student.exists() else None
        if current != item.text:
            atomic_write_text(item.student, item.text)
            written.append(item.student)
    return written


def check_in_sync(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Problems that ``build`` would fix (or that need an author): empty when all is in sync."""
    root = Path(directory) if directory is not None else exercises_dir()
    problems = []
    planned = plan(root)
    for item in planned:
        if not item.student.exists():
            problems.append(f"{item.student} is missing (built from {item.solution}).")
        elif item.student.read_text(encoding="utf-8") != item.text:
            problems.append(f"{item.student} is out of date with {item.solution}.")
    made = {item.student.name for item in planned}
    for nb in sorted(root.glob("*.ipynb")):
        if nb.name not in made:
            problems.append(f"{nb} has no solution notebook {root / 'solutions' / nb.name}.")
    return problems


def cli_build(args: Any) -> int:
    """``tlcourse exercises build [--check] [--dir DIR]``."""
    directory = getattr(args, "dir", None)
    if getattr(args, "check", False):
        problems = check_in_sync(directory)
        for p in problems:
            print(p)
        if problems:
            print("Run `tlcourse exercises build` to regenerate the student notebooks.")
            return 1
        print("Student notebooks are in sync with their solutions.")
        return 0
    written = build(directory)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("Student notebooks were already up to date.")
    return 0


__all__ = [
    "ANSWERS_PLACEHOLDER",
    "BuildError",
    "PLACEHOLDER",
    "build",
    "check_in_sync",
    "cli_build",
    "exercises_dir",
    "plan",
    "render",
    "strip_notebook",
    "strip_source",
]
