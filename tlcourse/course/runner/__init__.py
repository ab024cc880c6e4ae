"""``tlcourse run``: execute the course notebooks with papermill and report what they found.

The runner is how CI checks that every lesson still runs (``--profile smoke``), how a teacher
checks a classroom machine before the lesson (``--profile classroom``) and how the GPU-sized
results are reproduced (``--profile full``). A run is a short pipeline, one module a step:

1. :mod:`.discover` finds the course root (the directory holding ``notebooks/``;
   ``TLCOURSE_ROOT`` overrides) and its numbered notebooks;
2. :mod:`.parameters` reads every notebook's parameters cell with papermill's
   ``inspect_notebook`` (held against Python's own reading), :mod:`.profiles` reads
   ``notebooks/profiles.yaml`` and :mod:`.values` the ``-p KEY=VALUE`` values; :mod:`.plan`
   checks them all *before any kernel starts*: an unknown name or a value of the wrong type
   fails in a second, not after an hour of training (papermill itself would only warn and
   inject the typo);
3. :mod:`.outdir` makes a fresh, writable output directory (the sources are never written);
4. :mod:`.execute` runs the notebooks in numeric order in kernels :mod:`.kernels` keeps quiet,
   each with ``cwd`` = its folder in the output directory and the environment variables
   ``TLCOURSE_HEADLESS=1``, ``TLCOURSE_RESULTS=<out>/<stem>.results.json`` and
   ``TLCOURSE_BANKS`` (the course's question banks, found from the source tree);
5. it keeps going after a failure, and writes ``summary.json`` (:mod:`.summary`,
   machine-readable) and ``report.md`` (:mod:`.report`, for people) from what the notebooks
   recorded with :mod:`tlcourse.course.results`;
6. on Ctrl-C it kills the running notebook's kernel, writes both files for what finished (that
   notebook marked "interrupted") and prints the command that finishes the run:
   ``tlcourse run --resume DIR`` (:mod:`.resume`) reruns only the notebooks that are not ok,
   with the settings and parameter values ``summary.json`` recorded when the run started.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from ...errors import CourseError
from .discover import (
    EXERCISES_DIR,
    LESSONS_DIR,
    ROOT_ENV,
    CourseNotebook,
    find_root,
    numbered_notebooks,
)
from .execute import RunInterrupted, run_notebooks
from .kernels import TCP_WARNING, check_kernel, default_kernel
from .outdir import prepare_out
from .parameters import (
    Assignment,
    DeclaredParameter,
    cell_assignments,
    declared_parameters,
    parameters_cell,
)
from .plan import RunPlan, plan_run, prepare_run
from .profiles import PROFILES_FILE, Profile, load_profiles
from .report import REPORT_FILE, write_report
from .resume import resume_run
from .summary import STATUSES, SUMMARY_FILE, NotebookResult, RunSummary, load_summary
from .values import load_yaml_file, parse_assignment, parse_value

__all__ = [
    "EXERCISES_DIR", "LESSONS_DIR", "PROFILES_FILE", "REPORT_FILE", "ROOT_ENV", "STATUSES",
    "SUMMARY_FILE", "TCP_WARNING", "Assignment", "CourseNotebook", "DeclaredParameter",
    "NotebookResult", "Profile", "RunInterrupted", "RunPlan", "RunSummary", "cell_assignments",
    "cli_run", "declared_parameters", "default_kernel", "find_root", "load_profiles",
    "load_summary", "load_yaml_file", "numbered_notebooks", "parameters_cell", "parse_assignment",
    "parse_value", "plan_run", "prepare_run", "resume_run", "run_course", "write_report",
]


def _cell_timeout(timeout: int | None, profile: Profile) -> int | None:
    """``--timeout`` overrides the profile's; ``0`` means no limit."""
    if timeout is None:
        return profile.timeout
    return timeout if timeout > 0 else None


def _new_summary(plan: RunPlan, out: Path, started: datetime, kernel: str,
                 timeout: int | None, only: str | None, exercises: bool) -> RunSummary:
    return RunSummary(
        profile=plan.profile.name,
        parameters=plan.overrides,
        started=started.isoformat(timespec="seconds"),
        out=out,
        kernel=kernel,
        timeout=timeout,
        description=plan.profile.description,
        root=plan.root,
        lessons_dir=plan.lessons_dir,
        exercises_dir=plan.exercises_dir,
        profiles_file=plan.profiles_path.resolve(),
        only=only,
        exercises=exercises,
        plan=[(nb.label, dict(nb.parameters)) for nb in plan.notebooks],
    )


def run_course(
    root: str | os.PathLike[str] | None = None,
    *,
    profile: str = "classroom",
    only: str | None = None,
    out: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, Any] | Sequence[str] | None = None,
    exercises: bool = False,
    timeout: int | None = None,
    kernel: str = "python3",
    lessons_dir: str | os.PathLike[str] | None = None,
    exercises_dir: str | os.PathLike[str] | None = None,
    profiles_file: str | os.PathLike[str] | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
) -> RunSummary:
    """Check (:func:`prepare_run`), then execute the notebooks; return and write the summary.

    ``timeout`` (seconds per cell) overrides the profile's; ``0`` means no limit. The output
    defaults to ``<root>/runs/<YYYYmmdd-HHMMSS>/`` and must not exist or be empty. Raises
    :class:`CourseError` for anything found before the first notebook runs; a notebook that
    fails while running is reported in the summary (and the others still run). Ctrl-C stops
    the run: the summary and report are written for what finished, and :class:`RunInterrupted`
    (a ``KeyboardInterrupt``) says how to finish it with :func:`resume_run`.
    """
    stream = stream or sys.stdout
    plan = prepare_run(
        root, profile=profile, only=only, parameters=parameters, exercises=exercises,
        kernel=kernel, lessons_dir=lessons_dir, exercises_dir=exercises_dir,
        profiles_file=profiles_file,
    )
    check_kernel(kernel)
    cell_timeout = _cell_timeout(timeout, plan.profile)
    started = datetime.now().astimezone()
    out_path = (Path(out) if out is not None
                else plan.root / "runs" / started.strftime("%Y%m%d-%H%M%S")).resolve()
    prepare_out(out_path)
    summary = _new_summary(plan, out_path, started, kernel, cell_timeout, only, exercises)
    summary.save()  # from the start, so even a run stopped in its first notebook can resume
    limit = f"{cell_timeout} s per cell" if cell_timeout else "no per-cell timeout"
    print(f"tlcourse run: profile {profile}, {len(plan.notebooks)} notebook(s), kernel {kernel}, "
          f"{limit} -> {out_path}", file=stream, flush=True)
    return run_notebooks(summary, plan.notebooks, progress, stream)


_RUN_OPTIONS = (("profile", "--profile"), ("only", "--only"), ("out", "--out"),
                ("parameter", "-p"), ("exercises", "--exercises"), ("timeout", "--timeout"),
                ("kernel", "--kernel"))


def _refuse_options_with_resume(args: Any) -> None:
    given = [flag for name, flag in _RUN_OPTIONS
             if getattr(args, name, None) not in (None, [])
             and getattr(args, name, None) is not False]
    if given:
        raise CourseError(
            f"--resume repeats the run with the settings recorded in its {SUMMARY_FILE}; it "
            f"takes no {', '.join(given)}. Drop them, or start a new run without --resume."
        )


def cli_run(args: Any) -> int:
    """``tlcourse run``: exit status 0 if every notebook ran, 1 if any failed, 130 on Ctrl-C."""
    try:
        if getattr(args, "resume", None):
            _refuse_options_with_resume(args)
            summary = resume_run(args.resume)
        else:
            summary = run_course(
                profile=args.profile or "classroom",
                only=args.only,
                out=args.out,
                parameters=list(args.parameter or []),
                exercises=bool(args.exercises),
                timeout=args.timeout,
                kernel=args.kernel or default_kernel(),
            )
    except RunInterrupted as exc:
        print(f"tlcourse run: {exc}", file=sys.stderr, flush=True)
        return 130
    if getattr(args, "site", False):
        from ..site import build_site

        # Failed notebooks get a page too (saying they failed): the site shows the run as it was.
        build_site(summary.out, force=True)
    return 1 if summary.failed else 0
