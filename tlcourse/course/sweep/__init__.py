"""``tlcourse sweep``: one lesson (or several) rerun over a grid of parameter values on Dask.

A sweep is the runner's pipeline (:mod:`tlcourse.course.runner`) fanned out:

1. :mod:`.grid` reads ``--grid KEY=V1,V2,...`` with the ``-p`` dialect; :mod:`.tasks` plans
   every combination with the runner's :func:`~tlcourse.course.runner.plan.plan_run`, so an
   unknown key or a wrong value fails for the whole sweep before anything starts;
2. :mod:`.cluster` starts a ``LocalCluster`` sized so the kernels' torch threads do not
   oversubscribe the cores, or connects to ``--scheduler``; :mod:`.preflight` runs
   ``tlcourse doctor``'s checks on every worker and names any worker that lacks something;
3. :mod:`.submit` submits one Dask task per combination; each runs the notebook with the
   runner's :func:`~tlcourse.course.runner.execute.execute` on a worker (:mod:`.worker`) and
   its files are stored atomically in their own folder under ``--out`` (:mod:`.store`);
4. :mod:`.summary` keeps ``summary.json`` up to date after each task; :mod:`.aggregate` and
   :mod:`.report` write ``report.md``: each result's mean and spread across seeds, a plot,
   each task's time and worker, and each task's own section.

``tlcourse sweep --resume DIR`` reruns only the tasks that are not ok.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from ...errors import CourseError
from ..runner import _cell_timeout
from ..runner.kernels import check_kernel, default_kernel
from ..runner.outdir import check_writable, prepare_out
from ..runner.plan import CourseSelection, overrides_from, select_course, value_problems
from ..runner.summary import SUMMARY_FILE, not_resumable
from .cluster import local_layout, require_dask, start_local, connect
from .grid import check_grids, parse_grids
from .preflight import check_workers
from .submit import SweepInterrupted, run_tasks
from .summary import SweepSummary, load_sweep
from .tasks import SweepTask, plan_tasks

__all__ = ["SweepInterrupted", "SweepSummary", "SweepTask", "cli_sweep", "load_sweep",
           "resume_sweep", "run_sweep"]


@contextmanager
def _cluster(scheduler: str | None, workers: int | None, tasks: int) -> Iterator[tuple[Any, str]]:
    """A client and a description of where tasks run; a LocalCluster is closed on the way out."""
    if scheduler is not None:
        if workers is not None:
            raise CourseError("--workers sizes the local cluster; a --scheduler cluster has the "
                              "workers its machines started. Give one of them.")
        client = connect(scheduler)
        try:
            yield client, f"Dask scheduler {scheduler}"
        finally:
            client.close()
        return
    layout = local_layout(tasks, workers)
    cluster, client = start_local(layout)
    try:
        yield client, (f"LocalCluster, {layout.workers} worker(s) x 1 task, "
                       f"{layout.torch_threads} torch thread(s) each")
    finally:
        client.close()
        cluster.close()


def _sources(found: CourseSelection) -> dict[str, Path]:
    return {nb.label: nb.path for nb in found.selected}


def _grids(grid: Mapping[str, Sequence[Any]] | Sequence[str], fixed: Sequence[str]
           ) -> dict[str, list[Any]]:
    if isinstance(grid, Mapping):
        return check_grids(grid, fixed)
    return parse_grids(list(grid), fixed)


def run_sweep(
    root: str | os.PathLike[str] | None = None,
    *,
    grid: Mapping[str, Sequence[Any]] | Sequence[str],
    only: str | None = None,
    parameters: Mapping[str, Any] | Sequence[str] | None = None,
    profile: str = "classroom",
    out: str | os.PathLike[str] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    kernel: str = "python3",
    timeout: int | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
) -> SweepSummary:
    """Plan and check every combination, check the workers, then run the sweep into ``out``
    (default ``<root>/sweeps/<timestamp>/``, which must not exist or be empty)."""
    stream = stream or sys.stdout
    require_dask()
    overrides = overrides_from(parameters)
    grids = _grids(grid, list(overrides))
    found = select_course(root, profile=profile, only=only, kernel=kernel)
    tasks = plan_tasks(found, overrides, grids)
    check_kernel(kernel)
    started = datetime.now().astimezone()
    out_path = (Path(out) if out is not None
                else found.root / "sweeps" / started.strftime("%Y%m%d-%H%M%S")).resolve()
    prepare_out(out_path)  # before the cluster: a bad --out fails in a second
    with _cluster(scheduler, workers, len(tasks)) as (client, where):
        threads = check_workers(client, kernel)
        summary = SweepSummary(
            profile=found.profile.name, parameters=overrides,
            started=started.isoformat(timespec="seconds"), out=out_path, kernel=kernel,
            timeout=_cell_timeout(timeout, found.profile), description=found.profile.description,
            root=found.root, lessons_dir=found.lessons_dir, exercises_dir=found.exercises_dir,
            profiles_file=found.profiles_path.resolve(), only=only,
            plan=[(task.name, dict(task.parameters)) for task in tasks],
            grid=grids, tasks=tasks, cluster=where,
        )
        summary.save()
        print(f"tlcourse sweep: {len(tasks)} task(s), profile {profile}, {where} -> {out_path}",
              file=stream, flush=True)
        return run_tasks(summary, tasks, _sources(found), client, threads, progress, stream)


def _replan(summary: SweepSummary) -> tuple[list[SweepTask], CourseSelection]:
    """The tasks not ok (or whose folder is gone), checked against the course as it is now."""
    if summary.root is None or not summary.root.is_dir():
        raise not_resumable(summary.out, f"the course it ran, {summary.root}, is gone")
    found = select_course(summary.root, profile=summary.profile, only=summary.only,
                          kernel=summary.kernel, lessons_dir=summary.lessons_dir,
                          exercises_dir=summary.exercises_dir, profiles_file=summary.profiles_file)
    by_label = {nb.label: nb for nb in found.selected}
    ok = {r.name for r in summary.notebooks
          if r.status == "ok" and (summary.out / r.output).is_file()}
    todo, problems = [], []
    for task in summary.tasks:
        nb = by_label.get(task.notebook)
        if nb is None:
            problems.append(f"{task.notebook} is no longer in the course ({summary.root}).")
            continue
        nb.parameters = dict(task.parameters)
        nb.sources = {name: str(summary.out / SUMMARY_FILE) for name in task.parameters}
        problems += value_problems(nb)
        if task.name not in ok:
            todo.append(task)
    if problems:
        raise not_resumable(summary.out, "the course changed since the sweep started: "
                            + " ".join(problems))
    return todo, found


def resume_sweep(out: str | os.PathLike[str], *, scheduler: str | None = None,
                 workers: int | None = None, progress: bool = True,
                 stream: TextIO | None = None) -> SweepSummary:
    """Rerun the tasks of the sweep in ``out`` that are not ok, with their recorded values;
    the finished ones are kept untouched. ``scheduler``/``workers`` say where, as for a new
    sweep (where a task runs does not change what it computes)."""
    stream = stream or sys.stdout
    require_dask()
    summary = load_sweep(out)
    todo, found = _replan(summary)
    check_kernel(summary.kernel)
    check_writable(summary.out, "the resumed sweep's results")
    if not todo:
        print(f"tlcourse sweep --resume: nothing to do, all {len(summary.tasks)} task(s) in "
              f"{summary.out} are ok.", file=stream, flush=True)
        return summary
    rerun = {task.name for task in todo}
    with _cluster(scheduler, workers, len(todo)) as (client, where):
        threads = check_workers(client, summary.kernel)
        summary.notebooks = [r for r in summary.notebooks if r.name not in rerun]
        summary.interrupted = None
        summary.cluster = where
        summary.resumed.append(datetime.now().astimezone().isoformat(timespec="seconds"))
        summary.save()
        print(f"tlcourse sweep --resume: {len(todo)} of {len(summary.tasks)} task(s) to run, "
              f"{where} -> {summary.out}", file=stream, flush=True)
        return run_tasks(summary, todo, _sources(found), client, threads, progress, stream)


_NEW_SWEEP_OPTIONS = (("only", "--only"), ("grid", "--grid"), ("parameter", "-p"),
                      ("profile", "--profile"), ("out", "--out"), ("timeout", "--timeout"),
                      ("kernel", "--kernel"))


def cli_sweep(args: Any) -> int:
    """``tlcourse sweep``: 0 if every task ran ok, 1 if any failed, 130 on Ctrl-C."""
    try:
        if args.resume:
            given = [flag for name, flag in _NEW_SWEEP_OPTIONS if getattr(args, name, None)]
            if given:
                raise CourseError(
                    f"--resume repeats the sweep recorded in its {SUMMARY_FILE}; it takes no "
                    f"{', '.join(given)} (only --scheduler or --workers, to say where).")
            summary = resume_sweep(args.resume, scheduler=args.scheduler, workers=args.workers)
        else:
            summary = run_sweep(
                grid=list(args.grid or []), only=args.only, parameters=list(args.parameter or []),
                profile=args.profile or "classroom", out=args.out, scheduler=args.scheduler,
                workers=args.workers, kernel=args.kernel or default_kernel(), timeout=args.timeout,
            )
    except SweepInterrupted as exc:
        print(f"tlcourse sweep: {exc}", file=sys.stderr, flush=True)
        return 130
    return 1 if summary.failed else 0
