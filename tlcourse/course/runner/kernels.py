"""The notebooks' Jupyter kernels: which one, kept quiet, and stopped at once on Ctrl-C.

Each notebook runs in a kernel papermill (nbclient) starts with :func:`kernel_manager_class`.
While a run is going, Ctrl-C marks it interrupted (:data:`INTERRUPTED`) so kernels are killed
rather than politely asked to finish, and :func:`stop_leftover_kernels` kills one that was
still starting.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ...errors import CourseError

# ipykernel logs this to its stderr at every start (the runner talks to its own kernels over
# localhost). Once per notebook it buried the run's own lines; only this line is dropped.
TCP_WARNING = "Kernel is running over TCP without encryption"
INTERRUPTED = threading.Event()  # set by the runner's Ctrl-C handler
_KERNEL_MANAGER: type | None = None
_LIVE_KERNELS: set[Any] = set()  # managers whose kernel was started and not yet shut down


def default_kernel() -> str:
    """``tlcourse`` (the kernel scripts/setup.sh registers for the course's own environment)
    when installed, else ``python3``. Naming the course's kernel avoids running the notebooks
    in whatever Python another ``python3`` kernel spec on the machine points at."""
    from jupyter_client.kernelspec import KernelSpecManager

    return "tlcourse" if "tlcourse" in KernelSpecManager().find_kernel_specs() else "python3"


def check_kernel(kernel: str) -> None:
    """Refuse a kernel name Jupyter does not know, saying how to install or pick one."""
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = KernelSpecManager().find_kernel_specs()
    if kernel not in kernels:
        raise CourseError(
            f"No Jupyter kernel named {kernel!r} (installed: {', '.join(sorted(kernels)) or 'none'}). "
            f"Install one for this Python with: {sys.executable} -m ipykernel install --user "
            f"--name {kernel}, or pick an installed one with --kernel NAME."
        )


def _forward_stderr(pipe: Any, sink: TextIO) -> None:
    """Copy a kernel's stderr to ours line by line, without the TCP warning."""
    with pipe:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            if TCP_WARNING in line:
                continue
            with contextlib.suppress(Exception):  # a closed terminal must not block the kernel
                sink.write(line)
                sink.flush()


def _make_kernel_manager() -> type:
    from jupyter_client.manager import AsyncKernelManager

    class CourseKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["stderr"] = subprocess.PIPE
            await super()._async_launch_kernel(kernel_cmd, **kw)
            _LIVE_KERNELS.add(self)
            process = getattr(self.provisioner, "process", None)
            if process is not None and process.stderr is not None:
                threading.Thread(target=_forward_stderr, args=(process.stderr, sys.stderr),
                                 name="tlcourse-kernel-stderr", daemon=True).start()

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            try:
                await super().shutdown_kernel(now=now or INTERRUPTED.is_set(), restart=restart)
            finally:
                _LIVE_KERNELS.discard(self)

    return CourseKernelManager


def kernel_manager_class() -> type:
    """The kernel manager papermill (nbclient) starts each notebook's kernel with.

    It differs from jupyter_client's in two ways: the kernel's stderr goes through
    :func:`_forward_stderr`, and a shutdown after Ctrl-C kills the kernel at once. The default
    polite shutdown asks a kernel that is still busy with the interrupted cell to exit, which
    printed twenty lines of the kernel's traceback over the runner's message.
    """
    global _KERNEL_MANAGER
    if _KERNEL_MANAGER is None:
        _KERNEL_MANAGER = _make_kernel_manager()
    return _KERNEL_MANAGER


@contextmanager
def ctrl_c_stops_kernels() -> Iterator[None]:
    """While notebooks run, Ctrl-C raises ``KeyboardInterrupt`` as usual and marks the run as
    interrupted, so kernels are killed rather than politely asked to finish; a second Ctrl-C
    while the runner cleans up and writes the summary is ignored (it takes a second)."""
    INTERRUPTED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # started with Ctrl-C ignored (nohup, a background job)
        yield
        return

    def on_ctrl_c(signum: int, frame: Any) -> None:
        if not INTERRUPTED.is_set():
            INTERRUPTED.set()
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        INTERRUPTED.clear()


def _kill(manager: Any) -> None:
    process = getattr(manager.provisioner, "process", None)
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(OSError):
        if hasattr(os, "killpg"):  # the kernel leads its own process group
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    with contextlib.suppress(Exception):
        process.wait(timeout=5)
        manager.cleanup_connection_file()


def stop_leftover_kernels() -> None:
    """Kill a kernel Ctrl-C caught while it was starting (before nbclient could own it).

    Kernels run in their own session, so the terminal's Ctrl-C never reaches them; one left
    running would only exit when it notices its parent is gone."""
    for manager in list(_LIVE_KERNELS):
        _LIVE_KERNELS.discard(manager)
        _kill(manager)
