"""What one Dask task does on its worker: execute one notebook with the runner and send its
files back.

The notebook's source travels with the task (the worker needs the course's environment and
data, not a checkout), and it runs in a private temporary folder through
:func:`tlcourse.course.runner.execute.execute`, the very function ``tlcourse run`` uses, with
the worker's share of the cores as torch threads. A notebook that fails is a result
(``status`` "failed" with its error), not an exception: Dask retries only what a dead worker
left unfinished, never a notebook that failed on its own.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..runner.discover import CourseNotebook
from ..runner.execute import execute

# Environment variables that size the thread pools torch (OpenMP, MKL) starts in the kernel.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _collect(folder: Path) -> dict[str, bytes]:
    """Every file the notebook left in its folder, by path relative to it."""
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def run_task(spec: dict[str, Any], threads: dict[str, int]) -> dict[str, Any]:
    """Execute ``spec`` (built by :func:`tlcourse.course.sweep.submit.task_spec`) here; return
    the runner's result, the files, and where and how it ran."""
    from distributed import get_worker
    from distributed.comm import get_address_host

    address = get_worker().address
    torch_threads = int(threads.get(address, threads.get(get_address_host(address), 1)))
    started, start = _now(), time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="tlcourse-sweep-"))
    try:
        source = scratch / "source" / spec["notebook_file"]
        source.parent.mkdir()
        source.write_text(spec["source"], encoding="utf-8")
        run = scratch / "run"
        run.mkdir()
        nb = CourseNotebook(path=source, label=spec["notebook"], relpath=spec["notebook"],
                            exercise=False, declared={}, parameters=dict(spec["parameters"]))
        result = execute(nb, run, spec["kernel"], spec["timeout"], Path(spec["root"]),
                         env={name: str(torch_threads) for name in THREAD_VARIABLES})
        files = _collect(run)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"result": result.to_json(), "files": files, "worker": address,
            "host": get_address_host(address), "torch_threads": torch_threads,
            "started": started, "seconds": round(time.perf_counter() - start, 3)}
