"""``tlcourse run --resume DIR``: finish an interrupted (or partly failed) run as it started.

The notebooks that ended ``ok`` are kept; the others (failed, interrupted, never started) run
again with the parameter values ``summary.json`` recorded when the run started, even if the
profile changed since. Everything is checked before a kernel starts.
"""
from __future__ import annotations

import contextlib
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from .discover import LESSONS_DIR, CourseNotebook
from .execute import run_notebooks
from .kernels import check_kernel
from .outdir import check_writable
from .plan import prepare_run, value_problems
from .summary import SUMMARY_FILE, NotebookResult, RunSummary, load_summary, not_resumable


def _remove_stale_outputs(result: NotebookResult, out: Path) -> None:
    """Before a notebook reruns: its results file would otherwise be merged into (record()
    adds to it) and figures it no longer records would stay linked."""
    results_file = out / result.results_file
    for name in (result.results.get("figures") or {}).values():
        with contextlib.suppress(OSError):
            (results_file.parent / str(name)).unlink()
    with contextlib.suppress(OSError):
        results_file.unlink()


def _replan(summary: RunSummary) -> list[CourseNotebook]:
    """The notebooks still to run, with their recorded values, checked against the course
    as it is now; refused if a notebook went or a recorded value is no longer accepted."""
    root = summary.root
    if root is None or not (root / LESSONS_DIR).is_dir():
        raise not_resumable(summary.out, f"the course it ran, {root}, has no {LESSONS_DIR}/ "
                            "folder any more")
    plan = prepare_run(
        root, profile=summary.profile, only=summary.only, parameters=summary.parameters,
        exercises=summary.exercises, kernel=summary.kernel, lessons_dir=summary.lessons_dir,
        exercises_dir=summary.exercises_dir, profiles_file=summary.profiles_file,
    )
    check_kernel(summary.kernel)
    by_label = {nb.label: nb for nb in plan.notebooks}
    kept = {nb.name for nb in summary.notebooks if nb.status == "ok"}
    todo, problems = [], []
    for label, values in summary.plan:
        nb = by_label.get(label)
        if nb is None:
            problems.append(f"{label} is no longer in the course ({root}).")
            continue
        nb.parameters = dict(values)
        nb.sources = {name: f"{summary.out / SUMMARY_FILE}" for name in values}
        problems += value_problems(nb)
        if label not in kept:
            todo.append(nb)
    if problems:
        raise not_resumable(summary.out, "the course changed since the run started: "
                            + " ".join(problems))
    return todo


def _reset_for_rerun(summary: RunSummary, todo: list[CourseNotebook]) -> None:
    """Forget what is about to run again (results, figures) and mark the run resumed."""
    previous = {nb.name: nb for nb in summary.notebooks}
    for nb in todo:
        if nb.label in previous:
            _remove_stale_outputs(previous[nb.label], summary.out)
    summary.notebooks = [nb for nb in summary.notebooks if nb.status == "ok"]
    summary.interrupted = None
    summary.resumed.append(datetime.now().astimezone().isoformat(timespec="seconds"))
    summary.save()


def resume_run(out: str | os.PathLike[str], *, progress: bool = True,
               stream: TextIO | None = None) -> RunSummary:
    """Finish a run in ``out``: rerun the notebooks that did not end ``ok`` (failed,
    interrupted, never started) with the parameter values recorded when it started, keep the
    ones that did, and update ``summary.json`` and ``report.md``.

    Everything is checked before a kernel starts: the folder is a run folder, the course it
    came from is still there with every notebook of the run, and each recorded value is still
    accepted by its notebook.
    """
    stream = stream or sys.stdout
    summary = load_summary(out)
    todo = _replan(summary)
    check_writable(summary.out, "the resumed run's results")
    if not todo:
        print(f"tlcourse run --resume: nothing to do, all {len(summary.plan)} notebook(s) in "
              f"{summary.out} ran ok.", file=stream, flush=True)
        return summary
    kept = len({nb.name for nb in summary.notebooks if nb.status == "ok"})
    _reset_for_rerun(summary, todo)
    print(f"tlcourse run --resume: {len(todo)} of {len(summary.plan)} notebook(s) to run "
          f"({kept} ok kept), profile {summary.profile}, kernel {summary.kernel} -> "
          f"{summary.out}", file=stream, flush=True)
    return run_notebooks(summary, todo, progress, stream)
