"""The sweep's ``summary.json``: the runner's summary (one "notebook" per task, so ``failed``,
``not_started`` and the per-task report sections work unchanged) plus the grid, the tasks and
where each one ran. Saved after every finished task; ``--resume`` reads it back."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runner.summary import RunSummary, load_summary, not_resumable
from .tasks import SweepTask

_SWEEP_KEYS = ("grid", "tasks", "placements")


@dataclass
class SweepSummary(RunSummary):
    grid: dict[str, list[Any]] = field(default_factory=dict)
    tasks: list[SweepTask] = field(default_factory=list)
    # task name -> {"worker", "host", "torch_threads", "started", "attempts"}
    placements: dict[str, dict[str, Any]] = field(default_factory=dict)
    cluster: str = ""

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data.update({"kind": "sweep", "grid": self.grid, "cluster": self.cluster,
                     "tasks": [task.to_json() for task in self.tasks],
                     "placements": self.placements})
        return data

    def task(self, name: str) -> SweepTask:
        return next(task for task in self.tasks if task.name == name)


def sweep_resume_command(out: Path) -> str:
    return f"tlcourse sweep --resume {shlex.quote(str(out))}"


def load_sweep(out: str | os.PathLike[str]) -> SweepSummary:
    """Read a sweep folder's ``summary.json`` back, refusing a run folder or a damaged one."""
    import json

    run = load_summary(out, kind="sweep")
    data = json.loads((run.out / "summary.json").read_text(encoding="utf-8"))
    if any(key not in data for key in _SWEEP_KEYS):
        raise not_resumable(run.out, f"its summary.json lacks {', '.join(_SWEEP_KEYS)}")
    try:
        tasks = [SweepTask.from_json(item) for item in data["tasks"]]
        grid = {str(k): list(v) for k, v in dict(data["grid"]).items()}
        placements = {str(k): dict(v) for k, v in dict(data["placements"]).items()}
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise not_resumable(run.out, f"its summary.json is damaged ({exc!r})") from exc
    fields = {name: getattr(run, name) for name in RunSummary.__dataclass_fields__}
    return SweepSummary(**fields, grid=grid, tasks=tasks, placements=placements,
                        cluster=str(data.get("cluster") or ""))
