"""``summary.json``: what a run did, written after every notebook and read back by ``--resume``.

Besides the results it records what ``tlcourse run --resume`` needs to finish an interrupted
run exactly as it was started: the course root and folders, the selection (``plan``: every
selected notebook in run order with the parameter values it gets) and the options.
"""
from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ...errors import CourseError
from ..results import RESULTS_SUFFIX, write_json_atomic

SUMMARY_FILE = "summary.json"
# A notebook's status: "ok", "failed" (it raised, timed out, its kernel died) or "interrupted"
# (Ctrl-C while it ran). A notebook of the plan with no result yet has not started.
STATUSES = ("ok", "failed", "interrupted")
_RESUME_KEYS = ("profile", "parameters", "started", "kernel", "timeout", "root", "plan",
                "notebooks", "exercises")


@dataclass
class NotebookResult:
    """What happened to one notebook; ``output`` and figure paths are relative to the run."""

    name: str
    status: str  # one of STATUSES
    seconds: float
    output: str
    results: dict[str, Any]
    error: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    results_file: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "output": self.output,
            "results": self.results,
            "error": self.error,
            "parameters": self.parameters,
            "results_file": self.results_file,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NotebookResult:
        output = str(data["output"])
        default_results = Path(output).with_name(Path(output).stem + RESULTS_SUFFIX).as_posix()
        return cls(
            name=str(data["name"]),
            status=str(data["status"]),
            seconds=float(data["seconds"]),
            output=output,
            results=dict(data.get("results") or {}),
            error=data.get("error"),
            parameters=dict(data.get("parameters") or {}),
            results_file=str(data.get("results_file") or default_results),
        )


def _path_text(value: Path | None) -> str | None:
    return None if value is None else str(value)


@dataclass
class RunSummary:
    """The whole run, as written to ``summary.json``."""

    profile: str
    parameters: dict[str, Any]
    started: str
    out: Path
    kernel: str
    timeout: int | None
    description: str = ""
    finished: str | None = None
    notebooks: list[NotebookResult] = field(default_factory=list)
    root: Path | None = None
    lessons_dir: Path | None = None
    exercises_dir: Path | None = None
    profiles_file: Path | None = None
    only: str | None = None
    exercises: bool = False
    plan: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    interrupted: str | None = None  # the notebook Ctrl-C stopped (or the one after which)
    resumed: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[NotebookResult]:
        return [nb for nb in self.notebooks if nb.status != "ok"]

    @property
    def not_started(self) -> list[str]:
        ran = {nb.name for nb in self.notebooks}
        return [name for name, _ in self.plan if name not in ran]

    def record(self, result: NotebookResult) -> None:
        """Add (or replace) one notebook's result, keeping the plan's order."""
        order = [name for name, _ in self.plan]
        self.notebooks = [nb for nb in self.notebooks if nb.name != result.name] + [result]
        self.notebooks.sort(key=lambda nb: order.index(nb.name) if nb.name in order else len(order))

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "description": self.description,
            "parameters": self.parameters,
            "started": self.started,
            "finished": self.finished,
            "resumed": self.resumed,
            "interrupted": self.interrupted,
            "out": str(self.out),
            "kernel": self.kernel,
            "timeout": self.timeout,
            "root": _path_text(self.root),
            "lessons_dir": _path_text(self.lessons_dir),
            "exercises_dir": _path_text(self.exercises_dir),
            "profiles_file": _path_text(self.profiles_file),
            "only": self.only,
            "exercises": self.exercises,
            "plan": [{"name": name, "parameters": values} for name, values in self.plan],
            "not_started": self.not_started,
            "notebooks": [nb.to_json() for nb in self.notebooks],
        }

    def save(self) -> None:
        write_json_atomic(self.out / SUMMARY_FILE, self.to_json())


def resume_command(out: Path) -> str:
    """The command that finishes the run in ``out``, quoted for a shell."""
    return f"tlcourse run --resume {shlex.quote(str(out))}"


def where_stopped(summary: RunSummary) -> str:
    """"during 03_freezing.ipynb", or "between notebooks" when Ctrl-C came between two."""
    if summary.interrupted in {name for name, _ in summary.plan}:
        return f"during {summary.interrupted}"
    return summary.interrupted or "between notebooks"


def not_resumable(out: Path, why: str) -> CourseError:
    return CourseError(
        f"--resume {out}: {why}. --resume takes the folder of an earlier `tlcourse run` (the "
        "one holding its summary.json); to start afresh, run without --resume."
    )


def read_summary_file(folder: Path, refuse: Callable[[Path, str], Exception]) -> Any:
    """The decoded ``summary.json`` of ``folder``; ``refuse(folder, reason)`` makes the error.

    Shared by ``--resume`` (which refuses with "cannot resume") and ``tlcourse site`` (which
    refuses with "not a run folder"): the checks are the same, only the wording of the refusal
    differs.
    """
    if not folder.exists():
        raise refuse(folder, "no such folder")
    if not folder.is_dir():
        raise refuse(folder, "this is a file, not a run folder")
    path = folder / SUMMARY_FILE
    if not path.is_file():
        raise refuse(folder, f"not a run folder (it has no {SUMMARY_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise refuse(folder, f"its {SUMMARY_FILE} cannot be read ({exc})") from exc


def _read_summary_json(out_path: Path, kind: str) -> dict[str, Any]:
    """The folder's summary.json as a dict holding every key a resume needs, or refused."""
    data = read_summary_file(out_path, not_resumable)
    found = data.get("kind", "run") if isinstance(data, dict) else "run"
    if found not in ("run", "sweep"):
        raise not_resumable(out_path, f"its {SUMMARY_FILE} says it is of kind {found!r}, which "
                            "tlcourse does not write")
    if found != kind:
        raise not_resumable(out_path, f"it is the folder of a `tlcourse {found}`; finish it "
                            f"with `tlcourse {found} --resume {shlex.quote(str(out_path))}`")
    missing = [key for key in _RESUME_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise not_resumable(
            out_path, f"its {SUMMARY_FILE} lacks {', '.join(missing)} (written by an older "
            "tlcourse, or not by tlcourse run), so the run cannot be repeated as it was started")
    return data


def load_summary(out: str | os.PathLike[str], kind: str = "run") -> RunSummary:
    """Read a run folder's ``summary.json`` back, refusing anything that is not one.
    ``kind`` is ``"sweep"`` for a ``tlcourse sweep`` folder (its summary says so)."""
    out_path = Path(out).expanduser().resolve()
    data = _read_summary_json(out_path, kind)
    try:
        plan = [(str(item["name"]), dict(item["parameters"])) for item in data["plan"]]
        notebooks = [NotebookResult.from_json(item) for item in data["notebooks"]]
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise not_resumable(out_path, f"its {SUMMARY_FILE} is damaged ({exc!r})") from exc

    def path_or_none(key: str) -> Path | None:
        return Path(data[key]) if data.get(key) else None

    return RunSummary(
        profile=str(data["profile"]), parameters=dict(data["parameters"] or {}),
        started=str(data["started"]), out=out_path, kernel=str(data["kernel"]),
        timeout=data["timeout"], description=str(data.get("description") or ""),
        finished=data.get("finished"), notebooks=notebooks, root=Path(data["root"]),
        lessons_dir=path_or_none("lessons_dir"), exercises_dir=path_or_none("exercises_dir"),
        profiles_file=path_or_none("profiles_file"), only=data.get("only"),
        exercises=bool(data["exercises"]), plan=plan, interrupted=data.get("interrupted"),
        resumed=list(data.get("resumed") or []),
    )
