"""Before anything is submitted: can every worker run the course?

``tlcourse doctor``'s requirement checks run on each worker (``client.run``): it must import ``tlcourse``,
find the offline weights and the datasets, have the Jupyter kernel the sweep names, and run
one task at a time (one Dask thread: the kernel takes the cores). A worker that lacks
something is named with what it lacks and how to fix it, and nothing is submitted.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from ...errors import CourseError

_THREADS_FIX = ("start it with `dask worker ADDRESS --nthreads 1 --nworkers N`: each task's "
                "notebook kernel gets the cores as torch threads")


def worker_facts(kernel: str, dask_worker: Any = None) -> dict[str, Any]:
    """Run on a worker: its host, cores, Dask threads, and what the course lacks there."""
    from distributed.comm import get_address_host
    from jupyter_client.kernelspec import KernelSpecManager

    from ..doctor import requirement_checks
    from .cluster import machine_cores

    problems = [f"{c.name}: {c.detail}" for c in requirement_checks() if c.required and not c.ok]
    if kernel not in KernelSpecManager().find_kernel_specs():
        problems.append(f"no Jupyter kernel {kernel!r}: `python -m ipykernel install "
                        f"--sys-prefix --name {kernel}` in the worker's environment")
    state = getattr(dask_worker, "state", dask_worker)
    return {"host": get_address_host(dask_worker.address), "cores": machine_cores(),
            "nthreads": int(getattr(state, "nthreads", 1)), "problems": problems}


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and "tlcourse" in str(exc):
        return ("cannot import tlcourse: install the course in the worker's environment "
                "(scripts/setup.sh, or pip install -e .) and start `dask worker` from it")
    return f"the check itself failed: {type(exc).__name__}: {exc}"


def _worker_problems(address: str, facts: Any) -> list[str]:
    if isinstance(facts, BaseException):
        return [_describe_failure(facts)]
    problems = list(facts["problems"])
    if facts["nthreads"] != 1:
        problems.append(f"it runs {facts['nthreads']} Dask threads; {_THREADS_FIX}")
    return problems


def check_workers(client: Any, kernel: str) -> dict[str, int]:
    """Refuse (naming each worker and what it lacks) unless every worker can run the course;
    return the torch threads each worker's kernels get, by worker address and by host: the
    host's cores over the host's workers, so the kernels of one machine do not oversubscribe
    its cores."""
    facts = client.run(worker_facts, kernel, on_error="return")
    if not facts:
        raise CourseError("The Dask cluster has no workers; start some with `dask worker "
                          "tcp://SCHEDULER:8786 --nthreads 1 --nworkers N`.")
    lacking = {address: problems for address, value in sorted(facts.items())
               if (problems := _worker_problems(address, value))}
    if lacking:
        lines = [f"{address}: {'; '.join(problems)}" for address, problems in lacking.items()]
        raise CourseError(
            f"{len(lacking)} of {len(facts)} Dask worker(s) cannot run the course, so nothing "
            f"was submitted. " + " | ".join(lines)
        )
    per_host = Counter(value["host"] for value in facts.values())
    threads = {address: max(1, value["cores"] // per_host[value["host"]])
               for address, value in facts.items()}
    # By host too: a worker restarted after a crash has a new address on the same machine.
    threads.update({value["host"]: threads[address] for address, value in facts.items()})
    return threads
