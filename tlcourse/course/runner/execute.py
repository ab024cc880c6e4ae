"""Executing the planned notebooks with papermill, one after the other, into the run folder.

Each notebook runs with ``cwd`` = its folder in the output directory (so files it writes land
in the run, never in the course's source tree) and the environment variables
``TLCOURSE_HEADLESS=1``, ``TLCOURSE_RESULTS=<out>/<stem>.results.json`` and ``TLCOURSE_BANKS``.
A failing notebook does not stop the others; Ctrl-C stops the run after writing its summary
and report (:class:`RunInterrupted`).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TextIO

from ..._env import HEADLESS_ENV
from ...errors import CourseError
from ..results import RESULTS_ENV, read_results
from .discover import CourseNotebook
from .kernels import INTERRUPTED, ctrl_c_stops_kernels, kernel_manager_class, stop_leftover_kernels
from .report import REPORT_FILE, write_report
from .summary import SUMMARY_FILE, NotebookResult, RunSummary, resume_command, where_stopped

BANKS_ENV = "TLCOURSE_BANKS"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; its summary and report are written. Still a ``KeyboardInterrupt``,
    so a script that calls ``run_course`` stops as it would on any Ctrl-C."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary
        done = sum(nb.status == "ok" for nb in summary.notebooks)
        super().__init__(
            f"interrupted {where_stopped(summary)}; {done} of {len(summary.plan)} notebook(s) "
            f"finished, summary and report in {summary.out}. Resume with: "
            f"{resume_command(summary.out)}"
        )


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the kernel papermill starts (it inherits ours)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _error_line(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        # The last line of the notebook's traceback: "ZeroDivisionError: division by zero".
        text = f"{exc.ename}: {exc.evalue}" if exc.evalue else str(exc.ename)
    else:  # a timeout, a dead kernel: the first line says what happened
        lines = [line for line in str(exc).splitlines() if line.strip()]
        text = f"{type(exc).__name__}: {lines[0].strip() if lines else ''}".rstrip(": ")
    return " ".join(text.split())


def _kernel_environment(results_file: Path, root: Path) -> dict[str, str]:
    env = {HEADLESS_ENV: "1", RESULTS_ENV: str(results_file.resolve())}
    banks = root / "exercises" / "banks"
    if banks.is_dir() and not os.environ.get(BANKS_ENV):
        env[BANKS_ENV] = str(banks.resolve())
    return env


def _papermill(nb: CourseNotebook, output: Path, kernel: str, timeout: int | None) -> None:
    import papermill

    papermill.execute_notebook(
        str(nb.path),
        str(output),
        parameters=dict(nb.parameters),
        kernel_name=kernel,
        cwd=str(output.parent),
        execution_timeout=timeout,
        progress_bar=False,
        log_output=False,
        kernel_manager_class=kernel_manager_class(),
    )


def execute(nb: CourseNotebook, out: Path, kernel: str, timeout: int | None, root: Path,
            env: Mapping[str, str] | None = None) -> NotebookResult:
    """Run one notebook. Ctrl-C while it runs gives an "interrupted" result (its kernel is
    killed on the way out); the caller stops the run when it sees one. ``env`` adds
    environment variables for the kernel (a sweep's torch threads)."""
    output, results_file = nb.output_in(out), nb.results_in(out)
    output.parent.mkdir(parents=True, exist_ok=True)
    error, status = None, "ok"
    start = time.perf_counter()
    with _environment({**_kernel_environment(results_file, root), **(env or {})}):
        try:
            _papermill(nb, output, kernel, timeout)
        except KeyboardInterrupt:
            status = "interrupted"
        except Exception as exc:  # any failure of one notebook must not stop the others
            error, status = _error_line(exc), "failed"
    seconds = time.perf_counter() - start
    if status == "interrupted":
        error = f"interrupted (Ctrl-C) after {seconds:.1f} s"
    try:
        results = read_results(results_file)
    except CourseError as exc:
        results = {}
        if status == "ok":
            error, status = str(exc), "failed"
    return NotebookResult(
        name=nb.label, status=status, seconds=seconds,
        output=output.relative_to(out).as_posix(), results=results, error=error,
        parameters=dict(nb.parameters), results_file=results_file.relative_to(out).as_posix(),
    )


def _interrupted_result(nb: CourseNotebook, out: Path) -> NotebookResult:
    try:
        results = read_results(nb.results_in(out))
    except CourseError:
        results = {}
    return NotebookResult(
        name=nb.label, status="interrupted", seconds=0.0,
        output=nb.output_in(out).relative_to(out).as_posix(), results=results,
        error="interrupted (Ctrl-C)", parameters=dict(nb.parameters),
        results_file=nb.results_in(out).relative_to(out).as_posix(),
    )


def _status_lines(result: NotebookResult, width: int, out: Path) -> str:
    status = {"ok": "ok", "failed": "FAILED"}.get(result.status, result.status)
    line = f"{status:<7} {result.name:<{width}} {result.seconds:7.1f} s"
    if result.error is not None:
        line += f"\n        {result.error}"
        partial = out / result.output
        if partial.exists():
            line += f"\n        partially executed notebook: {partial}"
    return line


def _record_interrupt(summary: RunSummary, current: CourseNotebook | None) -> None:
    """After Ctrl-C: kill what still runs and mark where the run stopped."""
    INTERRUPTED.set()  # our handler now ignores a second Ctrl-C until the files are written
    stop_leftover_kernels()
    interrupted = {nb.name for nb in summary.notebooks if nb.status == "interrupted"}
    if current is not None and current.label not in interrupted:
        summary.record(_interrupted_result(current, summary.out))
    summary.interrupted = current.label if current is not None else "between notebooks"


def _finish(summary: RunSummary) -> None:
    summary.finished = datetime.now().astimezone().isoformat(timespec="seconds")
    summary.save()
    write_report(summary)


def run_notebooks(summary: RunSummary, todo: list[CourseNotebook], progress: bool,
                  stream: TextIO) -> RunSummary:
    """Execute ``todo`` in order into ``summary.out``, saving the summary after each one."""
    from tqdm.auto import tqdm

    out = summary.out
    width = max(len(name) for name, _ in summary.plan)
    bar = tqdm(todo, desc="notebooks", unit="nb", disable=not progress)
    current: CourseNotebook | None = None
    interrupted = False
    with ctrl_c_stops_kernels():
        try:
            for nb in bar:
                current = nb
                bar.set_postfix_str(nb.label)
                result = execute(nb, out, summary.kernel, summary.timeout, summary.root or out)
                summary.record(result)
                if result.status == "interrupted":
                    raise KeyboardInterrupt
                current = None
                summary.save()  # after every notebook, so a killed run still leaves a summary
                tqdm.write(_status_lines(result, width, out), file=stream)
        except KeyboardInterrupt:
            interrupted = True
            _record_interrupt(summary, current)
        finally:
            bar.close()
            _finish(summary)
    if interrupted:
        raise RunInterrupted(summary) from None
    _print_totals(summary, stream)
    return summary


def _print_totals(summary: RunSummary, stream: TextIO) -> None:
    total = sum(nb.seconds for nb in summary.notebooks)
    ok = len(summary.notebooks) - len(summary.failed)
    print(f"{ok} ok, {len(summary.failed)} failed in {total:.1f} s. Summary: "
          f"{summary.out / SUMMARY_FILE}  Report: {summary.out / REPORT_FILE}",
          file=stream, flush=True)
