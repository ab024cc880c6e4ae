"""Where the course is and which of its notebooks a run takes.

The course root is the directory holding ``notebooks/`` (``TLCOURSE_ROOT`` overrides the
search); its notebooks are the ``NN_*.ipynb`` files of ``notebooks/`` and ``exercises/``, in
numeric order, each read once for the parameters it declares.
"""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import CourseError
from ..results import RESULTS_SUFFIX
from .parameters import DeclaredParameter, declared_parameters

ROOT_ENV = "TLCOURSE_ROOT"
LESSONS_DIR = "notebooks"
EXERCISES_DIR = "exercises"
_NOTEBOOK_NAME = re.compile(r"^(\d+)_.*\.ipynb$")


def _root_from_env(value: str) -> Path:
    root = Path(value).expanduser().resolve()
    if not (root / LESSONS_DIR).is_dir():
        raise CourseError(
            f"{ROOT_ENV}={value} has no {LESSONS_DIR}/ directory. Point {ROOT_ENV} at the "
            "course folder (the one holding notebooks/ and exercises/) or unset it."
        )
    return root


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The course root: ``TLCOURSE_ROOT`` if set, else the first of ``start`` (default: the
    current directory) and its parents that holds a ``notebooks/`` directory."""
    value = os.environ.get(ROOT_ENV)
    if value:
        return _root_from_env(value)
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / LESSONS_DIR).is_dir():
            return directory
    raise CourseError(
        f"No course found: neither {here} nor any parent holds a {LESSONS_DIR}/ directory. "
        f"cd into the course folder, or set {ROOT_ENV}=/path/to/the/course."
    )


def numbered_notebooks(directory: Path) -> list[Path]:
    """``NN_*.ipynb`` files of a directory in numeric order (``2_`` before ``10_``)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_file() and _NOTEBOOK_NAME.match(p.name)]
    return sorted(found, key=lambda p: (int(_NOTEBOOK_NAME.match(p.name)[1]), p.name))


@dataclass
class CourseNotebook:
    """A notebook of the course and what the runner will do with it."""

    path: Path
    label: str  # how reports name it: "03_x.ipynb", or "exercises/03_x.ipynb"
    relpath: str  # path from the course root, for profile globs such as "exercises/03_*"
    exercise: bool
    declared: dict[str, DeclaredParameter]
    parameters: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # parameter -> where its value came from

    def matches(self, pattern: str) -> bool:
        """Glob match on the file name, its stem, its label or its path from the root."""
        return any(
            fnmatch.fnmatchcase(candidate, pattern)
            for candidate in (self.path.name, self.path.stem, self.label, self.relpath)
        )

    def output_in(self, out: Path) -> Path:
        return out / (EXERCISES_DIR if self.exercise else "") / self.path.name

    def results_in(self, out: Path) -> Path:
        return self.output_in(out).with_name(self.path.stem + RESULTS_SUFFIX)


def course_notebooks(root: Path, directory: Path, exercise: bool, kernel: str
                     ) -> list[CourseNotebook]:
    """The numbered notebooks of ``directory``, each with the parameters it declares."""
    notebooks = []
    for path in numbered_notebooks(directory):
        try:
            relpath = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            relpath = path.name
        label = f"{EXERCISES_DIR}/{path.name}" if exercise else path.name
        notebooks.append(
            CourseNotebook(path, label, relpath, exercise, declared_parameters(path, kernel))
        )
    return notebooks


def _chosen_by(nb: CourseNotebook, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return nb.matches(pattern)
    return pattern in nb.label


def select(notebooks: list[CourseNotebook], only: str | None) -> list[CourseNotebook]:
    """``--only``: comma-separated substrings of the label, or globs (``*``, ``?``, ``[``)."""
    if not only:
        return notebooks
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [nb for nb in notebooks if any(_chosen_by(nb, p) for p in patterns)]
    if not chosen:
        listing = ", ".join(nb.label for nb in notebooks)
        raise CourseError(
            f"--only {only!r} matches no notebook. Notebooks: {listing}. Give part of a name "
            "(--only 03), several separated by commas (--only 03,05) or a glob (--only '0[3-5]_*')."
        )
    return chosen
