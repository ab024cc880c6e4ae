"""Where a sweep's tasks run: a ``LocalCluster`` sized for this machine, or a running Dask
cluster (``--scheduler tcp://host:8786``).

Every worker runs one notebook at a time (one Dask thread) and the notebook's kernel gets the
torch threads: on one machine, ``workers x torch threads`` never exceeds its cores, so two
kernels do not fight over the same core (which makes both slower than one alone).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...errors import CourseError

# What one lesson kernel needs at most (dataset tensors, a model, its optimiser state): a
# LocalCluster never starts more workers than the machine's memory holds at this much each.
KERNEL_MEMORY = 3 * 1024**3
INSTALL_HINT = 'pip install "tlcourse[sweep]" (or: pip install "dask[distributed]")'


def require_dask() -> None:
    """Refuse, with the install command, when ``dask.distributed`` is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise CourseError(
            f"tlcourse sweep runs its tasks on Dask, which is not installed here: {INSTALL_HINT}."
        ) from exc


def machine_cores() -> int:
    """The cores this process may use (its CPU affinity), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def machine_memory() -> int:
    import psutil  # a dependency of distributed

    return int(psutil.virtual_memory().total)


@dataclass(frozen=True)
class Layout:
    """How many worker processes, and how many torch threads each one's kernels get."""

    workers: int
    torch_threads: int


def local_layout(tasks: int, workers: int | None = None, cores: int | None = None,
                 memory: int | None = None) -> Layout:
    """Workers for ``tasks`` tasks on this machine and torch threads per worker, so that
    ``workers x torch_threads <= cores``. ``workers`` (``--workers N``) may be at most the
    number of cores; by default it is the number of tasks, capped by the cores and by the
    memory (:data:`KERNEL_MEMORY` per kernel)."""
    cores = cores or machine_cores()
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise CourseError(f"--workers {workers!r}: give a whole number of workers >= 1.")
        if workers > cores:
            raise CourseError(
                f"--workers {workers}: this machine has {cores} core(s), and a worker's kernel "
                f"needs at least one; more workers than cores only makes every task slower. "
                f"Give --workers {cores} or fewer, or use --scheduler for more machines."
            )
    else:
        by_memory = max(1, (memory or machine_memory()) // KERNEL_MEMORY)
        workers = max(1, min(tasks, cores, by_memory))
    return Layout(workers, max(1, cores // workers))


def start_local(layout: Layout) -> tuple[Any, Any]:
    """A ``LocalCluster`` of worker processes, one Dask thread each, and its client."""
    import logging

    from distributed import Client, LocalCluster

    # silence_logs: the workers' own warnings (a heartbeat cut while the cluster closes) would
    # bury the sweep's lines; what happened to each task is in the summary and the report.
    cluster = LocalCluster(n_workers=layout.workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    return cluster, Client(cluster)


def connect(address: str, timeout: float = 30) -> Any:
    """A client of the running cluster at ``address``, or a message saying how to start one."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CourseError(
            f"--scheduler {address}: no Dask scheduler answered ({type(exc).__name__}: {exc}). "
            "Start one with `dask scheduler` on the head machine and `dask worker "
            "tcp://HEAD:8786 --nthreads 1 --nworkers N` on each machine (README, 'Sweeps on "
            "several machines'), or drop --scheduler to use this machine alone."
        ) from exc
