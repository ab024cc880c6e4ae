"""A ``tlcourse run`` output folder read back for the website, as untrusted input.

The folder may come from another machine (an instructor's GPU box, a colleague's zip), so every
name in its ``summary.json`` is checked before it is used as a path: a notebook must be a
``NN_*.ipynb`` file of the folder itself or of its ``exercises/`` subfolder, nothing reached
through ``..``, an absolute path or a symbolic link that leaves the folder. Anything else is a
:class:`~tlcourse.errors.CourseError` that says what was wrong, before a page is written.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import CourseError
from ..runner.discover import EXERCISES_DIR
from ..runner.summary import STATUSES, SUMMARY_FILE, NotebookResult, read_summary_file

_NOTEBOOK = re.compile(r"^\d+_[A-Za-z0-9_.-]*\.ipynb$")
_REQUIRED = ("profile", "started", "notebooks")


def not_a_run(folder: Path, why: str) -> CourseError:
    return CourseError(
        f"{folder}: {why}. `tlcourse site` takes the output folder of a `tlcourse run` (the one "
        f"holding its {SUMMARY_FILE} and the executed notebooks), e.g. "
        "`tlcourse site runs/20261201-0900 --out site`."
    )


@dataclass
class RunNotebook:
    """One executed notebook of the run: where it is and what the runner recorded about it."""

    result: NotebookResult
    path: Path  # the executed notebook, checked to lie inside the run folder
    relpath: str  # "03_freezing.ipynb" or "exercises/03_freezing.ipynb"

    @property
    def exercise(self) -> bool:
        return self.relpath.startswith(EXERCISES_DIR + "/")

    @property
    def stem(self) -> str:
        return PurePosixPath(self.relpath).stem

    @property
    def environment(self) -> dict[str, Any]:
        run = self.result.results.get("run") or {}
        env = run.get("environment") if isinstance(run, dict) else None
        return env if isinstance(env, dict) else {}

    @property
    def values(self) -> dict[str, Any]:
        values = self.result.results.get("values")
        return values if isinstance(values, dict) else {}


@dataclass
class RunFolder:
    """The run as the site shows it: its summary and the notebooks that have an output file."""

    path: Path
    summary: dict[str, Any]
    notebooks: list[RunNotebook]
    unwritten: list[NotebookResult] = field(default_factory=list)  # failed before papermill wrote them

    @property
    def lessons(self) -> list[RunNotebook]:
        return [nb for nb in self.notebooks if not nb.exercise]

    @property
    def exercises(self) -> list[RunNotebook]:
        return [nb for nb in self.notebooks if nb.exercise]

    @property
    def environment(self) -> dict[str, Any]:
        """Versions and device as the first lesson that recorded them saw them."""
        return next((nb.environment for nb in self.notebooks if nb.environment), {})

    def text(self, key: str) -> str:
        value = self.summary.get(key)
        return "" if value is None else str(value)


def _checked_relpath(folder: Path, output: str) -> str:
    """``output`` from summary.json, refused unless it names a notebook inside the run folder."""
    parts = PurePosixPath(output).parts
    shape_ok = (len(parts) == 1 and _NOTEBOOK.match(parts[0])) or (
        len(parts) == 2 and parts[0] == EXERCISES_DIR and _NOTEBOOK.match(parts[1]))
    if not shape_ok or "\\" in output:
        raise not_a_run(folder, f"its {SUMMARY_FILE} names the notebook {output!r}, which is not "
                        f"an NN_name.ipynb file of the run folder or of its {EXERCISES_DIR}/ "
                        "subfolder (the file may have been edited by hand or by someone else)")
    return output


def _inside(folder: Path, relpath: str) -> Path | None:
    """The notebook's real path if it exists inside ``folder`` (links followed), else None."""
    path = folder / relpath
    if not path.is_file():
        return None
    real = path.resolve()
    if folder not in real.parents:
        raise not_a_run(folder, f"{relpath} is a link to {real}, outside the run folder; copy "
                        "the file itself into the run folder")
    return real


def _read_summary(folder: Path) -> dict[str, Any]:
    data = read_summary_file(folder, not_a_run)
    if not isinstance(data, dict):
        raise not_a_run(folder, f"its {SUMMARY_FILE} is not a JSON object")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise not_a_run(folder, f"its {SUMMARY_FILE} lacks {', '.join(missing)}")
    if not isinstance(data["notebooks"], list):
        raise not_a_run(folder, f"'notebooks' in its {SUMMARY_FILE} is not a list")
    return data


def _result(folder: Path, item: Any) -> NotebookResult:
    try:
        result = NotebookResult.from_json(item)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise not_a_run(folder, f"a notebook entry of its {SUMMARY_FILE} is damaged ({exc!r})") from exc
    if result.status not in STATUSES:
        raise not_a_run(folder, f"{result.name} has the unknown status {result.status!r} "
                        f"(expected one of {', '.join(STATUSES)})")
    if not isinstance(result.results, dict):
        result.results = {}
    return result


def read_run(folder: str | os.PathLike[str]) -> RunFolder:
    """Read and check a run folder; refuse one with no executed notebook to show."""
    path = Path(folder).expanduser().resolve()
    data = _read_summary(path)
    notebooks, unwritten = [], []
    for item in data["notebooks"]:
        result = _result(path, item)
        relpath = _checked_relpath(path, result.output)
        real = _inside(path, relpath)
        if real is None:  # failed before papermill wrote it: no page, a line on the landing page
            unwritten.append(result)
        else:
            notebooks.append(RunNotebook(result, real, relpath))
    if not notebooks:
        raise not_a_run(path, "none of the notebooks its summary lists was written (did the run "
                        "stop before the first one finished?)")
    notebooks.sort(key=lambda nb: (nb.exercise, nb.relpath))
    return RunFolder(path, data, notebooks, unwritten)
