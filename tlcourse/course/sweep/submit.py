"""Submitting the tasks to Dask and gathering them as they finish.

Each finished task's files are stored under ``<out>/tasks/<folder>/`` (:mod:`.store`), its
result recorded and ``summary.json`` saved at once, so whatever stops the sweep, every task
that finished is kept and ``--resume`` skips it. A task whose notebook failed is a result like
any other; a task whose worker died is rescheduled by Dask on another worker (up to
``distributed.scheduler.allowed-failures`` deaths); Ctrl-C cancels what is left, writes the
summary and the report, and says how to resume.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from ...errors import CourseError
from ..runner.summary import NotebookResult
from .report import write_sweep_report
from .store import TASKS_DIR, store_files
from .summary import SweepSummary, sweep_resume_command
from .tasks import SweepTask
from .worker import run_task


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep; its summary and report are written (still a KeyboardInterrupt)."""

    def __init__(self, summary: SweepSummary) -> None:
        self.summary = summary
        done = sum(r.status == "ok" for r in summary.notebooks)
        super().__init__(f"interrupted; {done} of {len(summary.plan)} task(s) finished, summary "
                         f"and report in {summary.out}. Resume with: "
                         f"{sweep_resume_command(summary.out)}")


def task_spec(task: SweepTask, summary: SweepSummary, source: Path) -> dict[str, Any]:
    """What a worker needs to run ``task``: the notebook's text travels with it."""
    return {"notebook": task.notebook, "notebook_file": source.name,
            "source": source.read_text(encoding="utf-8"), "parameters": task.parameters,
            "kernel": summary.kernel, "timeout": summary.timeout, "root": str(summary.root)}


def _prefixed(path: str, task: SweepTask) -> str:
    return f"{TASKS_DIR}/{task.folder}/{path}"


def _failure(task: SweepTask, source: Path, error: str) -> NotebookResult:
    return NotebookResult(name=task.name, status="failed", seconds=0.0,
                          output=_prefixed(source.name, task), results={}, error=error,
                          parameters=dict(task.parameters),
                          results_file=_prefixed(f"{source.stem}.results.json", task))


def _task_error(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return (f"its worker died each time it ran it ({exc}); Dask gave up after "
                "distributed.scheduler.allowed-failures deaths. Look for the worker's "
                "out-of-memory kill, or run fewer workers per machine.")
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _outcome(future: Any, task: SweepTask, source: Path, summary: SweepSummary) -> NotebookResult:
    """The task's result, its files stored under ``--out``, its placement recorded."""
    if future.status != "finished":
        return _failure(task, source, _task_error(future.exception()))
    payload = future.result()
    try:
        store_files(summary.out, task.folder, payload["files"])
    except (CourseError, OSError) as exc:
        return _failure(task, source, f"its files could not be stored: {exc}")
    result = NotebookResult.from_json(payload["result"])
    result.name = task.name
    result.output = _prefixed(result.output, task)
    result.results_file = _prefixed(result.results_file, task)
    summary.placements[task.name] = {key: payload[key] for key in
                                     ("worker", "host", "torch_threads", "started")}
    return result


def _status_line(result: NotebookResult, summary: SweepSummary) -> str:
    worker = summary.placements.get(result.name, {}).get("worker", "")
    line = f"{'ok' if result.status == 'ok' else 'FAILED':<7} {result.name}  {result.seconds:7.1f} s  {worker}"
    return line + (f"\n        {result.error}" if result.error else "")


def _finish(summary: SweepSummary) -> None:
    summary.finished = datetime.now().astimezone().isoformat(timespec="seconds")
    summary.save()
    write_sweep_report(summary)


def run_tasks(summary: SweepSummary, todo: list[SweepTask], sources: dict[str, Path],
              client: Any, threads: dict[str, int], progress: bool, stream: TextIO
              ) -> SweepSummary:
    """Submit ``todo``, record each task as it finishes; Ctrl-C raises :class:`SweepInterrupted`
    after cancelling the rest and writing the summary and report."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    run_id = uuid.uuid4().hex[:8]
    futures = {client.submit(run_task, task_spec(task, summary, sources[task.notebook]), threads,
                             key=f"tlcourse-sweep-{run_id}-{task.folder}", pure=False): task
               for task in todo}
    bar = tqdm(total=len(todo), desc="tasks", unit="task", disable=not progress)
    interrupted = False
    try:
        for future in as_completed(futures):
            task = futures[future]
            result = _outcome(future, task, sources[task.notebook], summary)
            summary.record(result)
            summary.save()  # after every task: a killed sweep still knows what finished
            bar.update()
            tqdm.write(_status_line(result, summary), file=stream)
    except KeyboardInterrupt:
        interrupted = True
        summary.interrupted = "during the sweep"
        client.cancel(list(futures))
    finally:
        bar.close()
        _finish(summary)
    if interrupted:
        raise SweepInterrupted(summary) from None
    return summary
