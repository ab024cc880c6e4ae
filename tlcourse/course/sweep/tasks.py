"""The tasks of a sweep: one papermill execution per selected notebook and grid combination,
each planned and checked by the runner (:func:`tlcourse.course.runner.plan.plan_run`) before
anything is submitted.

Every combination goes through the same checks as ``tlcourse run -p ...``: a grid key no
selected notebook declares, a value of the wrong type or out of range, fails for the whole
sweep in a second. A notebook that does not declare some grid key gets one task per distinct
set of values it *does* receive, not several identical ones.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidParameterError
from ..runner.discover import CourseNotebook
from ..runner.plan import CourseSelection, check_override_names, plan_run
from .grid import combination_label, combinations, folder_name

_FOLDER = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$")


@dataclass
class SweepTask:
    """One notebook with one combination of the grid: what a Dask task executes."""

    name: str  # unique: "07_case_plant_disease.ipynb [seed=0, image_size=128]"
    folder: str  # its folder under <out>/tasks/
    notebook: str  # the notebook's label
    grid: dict[str, Any]  # the grid values this notebook receives
    parameters: dict[str, Any]  # every value passed (profile, -p, grid)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "folder": self.folder, "notebook": self.notebook,
                "grid": self.grid, "parameters": self.parameters}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepTask:
        """Read back from ``summary.json``; a folder name that is not one plain name (``..``,
        a slash) is refused: files are written there on resume."""
        if not _FOLDER.match(str(data["folder"])) or ".." in str(data["folder"]):
            raise ValueError(f"task folder {data['folder']!r} is not a plain folder name")
        return cls(name=str(data["name"]), folder=str(data["folder"]),
                   notebook=str(data["notebook"]), grid=dict(data["grid"]),
                   parameters=dict(data["parameters"]))


def _planned(found: CourseSelection, values: Mapping[str, Any], combination: Mapping[str, Any]
             ) -> list[CourseNotebook]:
    """The selected notebooks with ``values`` planned in (copies: the next combination starts
    from the notebooks as found)."""
    selected = [copy.copy(nb) for nb in found.selected]
    said = {name: f"--grid {name}={value!r}" for name, value in combination.items()}
    try:
        plan_run(found.course, selected, found.profile, values, found.profiles_path, said)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"Nothing was submitted. {exc}") from exc
    return selected


def plan_tasks(found: CourseSelection, overrides: Mapping[str, Any],
               grids: dict[str, list[Any]]) -> list[SweepTask]:
    """Every task of the sweep, each combination checked like ``tlcourse run -p``; raises
    :class:`InvalidParameterError` for the first combination with a problem."""
    check_override_names(found.selected, grids, "--grid")
    tasks: list[SweepTask] = []
    seen: set[tuple[str, str]] = set()
    for combination in combinations(grids):
        for nb in _planned(found, {**overrides, **combination}, combination):
            received = {k: v for k, v in combination.items() if k in nb.declared}
            key = (nb.label, repr(sorted(nb.parameters.items())))
            if key in seen:
                continue
            seen.add(key)
            tasks.append(SweepTask(
                name=f"{nb.label} [{combination_label(received) or 'as declared'}]",
                folder=folder_name(nb.path.stem, received, len(tasks)),
                notebook=nb.label, grid=received, parameters=dict(nb.parameters),
            ))
    return tasks
