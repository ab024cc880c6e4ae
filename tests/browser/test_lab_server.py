"""The JupyterLab the browser tests start leaves no server and no kernel behind, even when the
test fails, and even when the server itself dies first. No browser needed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab_server import JupyterLab, _alive

pytestmark = pytest.mark.browser


def _start_kernel(lab: JupyterLab) -> list[int]:
    lab.api("kernels", method="POST", timeout=60)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pids = lab.kernel_pids()
        if pids:
            return pids
        time.sleep(0.5)
    raise AssertionError(f"no kernel process appeared; server log:\n{lab.log_tail()}")


def _gone(pids: list[int]) -> bool:
    return not any(_alive(pid) for pid in pids)


def test_a_failing_test_leaves_no_server_or_kernel(tmp_path: Path):
    (tmp_path / "root").mkdir()
    lab = JupyterLab(tmp_path / "root", tmp_path / "lab")
    with pytest.raises(RuntimeError, match="the test failed"):
        with lab:
            server, kernels = lab.proc.pid, _start_kernel(lab)  # type: ignore[union-attr]
            raise RuntimeError("the test failed")
    assert _gone([server, *kernels]) and lab.kernel_pids() == []
    with pytest.raises(ProcessLookupError):
        os.killpg(server, 0)


def test_a_crashed_server_s_kernels_are_ended(tmp_path: Path):
    """The server dies first; its real kernel ends itself, and one that would not (a stand-in
    that ignores its parent, holding a connection file of this server) is ended by stop()."""
    (tmp_path / "root").mkdir()
    lab = JupyterLab(tmp_path / "root", tmp_path / "lab").start()
    stuck = None
    try:
        kernels = _start_kernel(lab)
        stuck = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)", str(lab.runtime_dir / "kernel-stuck.json")],
            start_new_session=True,
        )
        os.kill(lab.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
    finally:
        try:
            lab.stop()
        finally:
            if stuck is not None and stuck.poll() is None:  # only if stop() failed: leave nothing
                stuck.kill()
    assert stuck.wait(timeout=10) == -signal.SIGTERM
    assert any(str(stuck.pid) in line for line in lab.killed), lab.killed
    assert _gone(kernels) and lab.kernel_pids() == []
