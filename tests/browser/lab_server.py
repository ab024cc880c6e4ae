"""A real JupyterLab server for the browser tests, started and stopped without leftovers.

Why a helper of its own: the browser tests must see what a learner sees, so the server is the
course's own ``python -m jupyter lab`` (same venv, same kernels), but nothing of it may outlive
a test: not the server, not a kernel, also when the test fails half-way. So:

- the server runs in its own process group (``start_new_session``) and in private Jupyter
  folders (runtime, config, lab settings, workspaces) inside the test's temporary folder, so
  every process it starts can be told apart from anyone else's by those paths;
- the kernels jupyter_client starts get a session of their own, outside the server's group;
  they are found by their connection file, which lies in the private runtime folder;
- :meth:`JupyterLab.stop` asks the server to shut down (``POST /api/shutdown``, which stops
  the kernels first), then terminates and, if need be, kills what is left, and reports any
  process it had to kill, so a leak shows up as a test error instead of a slow machine.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# Lab settings a learner's machine may differ in, fixed so that every cell stays in the page
# (windowing would drop off-screen cells from the DOM) and no news pop-up covers a screenshot.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

# What tlcourse reads from the environment that would make the lab differ from a learner's.
_CLEARED = (
    "MPLBACKEND",  # a test run's Agg backend would stop plots from showing inline
    "TLCOURSE_HEADLESS",
    "TLCOURSE_RESULTS",
    "TLCOURSE_PROGRESS",
    "TLCOURSE_LEARNER",
    "TLCOURSE_EXAM",
    "TLCOURSE_BANKS",
    "JPY_PARENT_PID",
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound, then released for the server to take)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent's wait is missing.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_alive(pid) for pid in _pids_where(lambda pid: os.getpgid(pid) == pgid))


def _pids_where(test: Any) -> list[int]:
    """Pids of live processes for which ``test(pid)`` is true (Linux /proc; [] elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    out = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if test(pid):
                out.append(pid)
        except (OSError, ProcessLookupError):
            continue
    return out


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


class JupyterLab:
    """``python -m jupyter lab`` on a free loopback port, serving ``root``.

    ``env`` adds or overrides environment variables of the server (its kernels inherit them).
    Use as a context manager; :meth:`url` builds an address with the token.
    """

    def __init__(self, root: Path, workdir: Path, env: dict[str, str] | None = None,
                 python: str = sys.executable, start_timeout: float = 180.0) -> None:
        self.root = Path(root)
        self.workdir = Path(workdir)
        self.extra_env = dict(env or {})
        self.python = python
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "jupyter-lab.log"
        self.runtime_dir = self.workdir / "jupyter-runtime"
        self.killed: list[str] = []

    # ------------------------------------------------------------------ addresses

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "lab") -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the REST API with the token; the decoded JSON (None for an empty answer)."""
        request = urllib.request.Request(
            f"{self.base}/api/{path.lstrip('/')}", method=method, data=b"" if method != "GET" else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"

    # ------------------------------------------------------------------ start

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        private = {
            "JUPYTER_RUNTIME_DIR": self.runtime_dir,
            "JUPYTER_CONFIG_DIR": self.workdir / "jupyter-config",
            "JUPYTERLAB_SETTINGS_DIR": self.workdir / "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": self.workdir / "lab-workspaces",
            "IPYTHONDIR": self.workdir / "ipython",
        }
        for name, path in private.items():
            path.mkdir(parents=True, exist_ok=True)
            env[name] = str(path)
        # The kernels must import the tlcourse under test, whichever checkout that is.
        repo = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
        env.update(self.extra_env)
        return env

    def _write_settings(self, settings_dir: Path) -> None:
        for rel, values in LAB_SETTINGS.items():
            path = settings_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values), encoding="utf-8")

    def start(self) -> "JupyterLab":
        env = self._environment()
        self._write_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
        cmd = [
            self.python, "-m", "jupyter", "lab", "--no-browser",
            f"--ServerApp.token={self.token}", f"--port={self.port}", "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={self.root}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with status {self.proc.returncode} before it answered.\n"
                    f"Its log ({self.log_path}):\n{self.log_tail()}"
                )
            try:
                status = self.api("status", timeout=5)
                if isinstance(status, dict) and "started" in status:
                    return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise RuntimeError(
            f"JupyterLab did not answer /api/status within {self.start_timeout:.0f} s "
            f"(last error: {last}).\nIts log ({self.log_path}):\n{self.log_tail()}"
        )

    # ------------------------------------------------------------------ stop

    def kernel_pids(self) -> list[int]:
        """Live processes started with a connection file in this server's runtime folder."""
        marker = str(self.runtime_dir) + os.sep
        return [pid for pid in _pids_where(lambda pid: marker in _cmdline(pid)) if _alive(pid)]

    def _terminate(self, pids: list[int], what: str, grace: float) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = [pid for pid in pids if _alive(pid)]
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            self.killed.extend(f"{what} {pid} ({sig.name})" for pid in left)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(_alive(p) for p in left):
                time.sleep(0.2)

    def stop(self, grace: float = 30.0) -> None:
        """Shut the server and its kernels down; afterwards none of their processes is left.

        Raises ``RuntimeError`` if some process survived even SIGKILL, which would be a leak.
        """
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        if proc.poll() is None:
            try:
                self.api("shutdown", method="POST", timeout=10)
            except (urllib.error.URLError, OSError, ValueError):
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(pgid, signal.SIGTERM, "server group")
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._signal_group(pgid, signal.SIGKILL, "server group")
                    proc.wait(timeout=15)
        # Kernels stop themselves when their parent goes (ipykernel's parent poller), but not
        # always at once; whatever still holds one of our connection files is ours to end.
        deadline = time.monotonic() + 5
        while self.kernel_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        self._terminate(self.kernel_pids(), "kernel", 10)
        if _group_alive(pgid):
            self._signal_group(pgid, signal.SIGKILL, "server group")
            time.sleep(1)
        leftovers = self.kernel_pids() + ([pgid] if _group_alive(pgid) else [])
        self.proc = None
        if leftovers:
            raise RuntimeError(f"Processes of the JupyterLab server still run after stop(): {leftovers}")

    def _signal_group(self, pgid: int, sig: signal.Signals, what: str) -> None:
        try:
            os.killpg(pgid, sig)
            self.killed.append(f"{what} {pgid} ({sig.name})")
        except ProcessLookupError:
            pass

    def __enter__(self) -> "JupyterLab":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
