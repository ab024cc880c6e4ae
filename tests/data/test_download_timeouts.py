"""Downloads from a mirror that never answers fail in seconds, naming the host
(tlcourse/data/download.py's bounded connect and read timeouts).

The mirror is a real TCP port on 127.0.0.1 that accepts connections and never sends a byte
(or never completes them); the timeouts are the settings a classroom uses.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_output import error_lines
from tlcourse.course.cli import main
from tlcourse.data import download as dl
from tlcourse.data.registry import get_info
from tlcourse.errors import CourseError

NPZ = "pneumoniamnist/pneumoniamnist.npz"
# The settings a classroom (or a test) uses to bound how long a silent server is waited for.
CONNECT_TIMEOUT_ENV = "TLCOURSE_CONNECT_TIMEOUT"
READ_TIMEOUT_ENV = "TLCOURSE_READ_TIMEOUT"


class SilentServer:
    """A TCP port on 127.0.0.1 that completes connections but never sends a byte.

    ``accept=False`` with ``backlog=0`` fills the listen queue so that further connections
    are not even completed (a connect timeout). Bounded: everything is closed after
    ``lifetime_s`` seconds, or when the test ends.
    """

    def __init__(self, *, accept: bool = True, backlog: int = 16, lifetime_s: float = 15.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        self.fillers: list[socket.socket] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime_s
        if not accept:
            filler = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            self.fillers.append(filler)  # the one connection the queue holds
        self._thread = threading.Thread(target=self._serve, args=(accept,), daemon=True)
        self._thread.start()

    def _serve(self, accept: bool) -> None:
        try:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                if not accept:
                    time.sleep(0.05)
                    continue
                try:
                    conn, _ = self.sock.accept()
                except (TimeoutError, socket.timeout):
                    continue
                self.accepted.append(conn)  # held open, never written to
        finally:
            for conn in [*self.accepted, *self.fillers]:
                conn.close()
            self.sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


def test_a_mirror_that_never_answers_fails_in_seconds_naming_the_host(
    silent: SilentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TLCOURSE_DATA", raising=False)
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(dl.MIRROR_ENV, f"http://{silent.host}/")
    monkeypatch.setenv(READ_TIMEOUT_ENV, "1")
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    start = time.monotonic()
    assert main(["data", "fetch", "plantvillage"]) == 2
    elapsed = time.monotonic() - start
    err = "\n".join(error_lines(capsys.readouterr().err))
    first = err.splitlines()[0]
    assert first.startswith("tlcourse data: The first ")
    assert f"could not be downloaded from {silent.host}" in first
    assert f"{silent.host} accepted the connection but did not answer within 1 s" in err
    assert elapsed < 8, f"took {elapsed:.1f} s"
    assert len(silent.accepted) <= 4  # one request per worker, then the host is not asked again
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_one_file_from_a_silent_server_is_not_retried_for_minutes(silent: SilentServer, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(READ_TIMEOUT_ENV, "0.5")
    info = get_info("pneumoniamnist")
    url = f"http://{silent.host}/{NPZ}"
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as raised:
        dl.download_file(url, tmp_path / "x.npz", info.sha256, info.size, progress=False, retries=2)
    elapsed = time.monotonic() - start
    message = str(raised.value)
    assert message.startswith(f"Could not download {url} to {tmp_path / 'x.npz'} (1 attempt): "
                              f"{silent.host} accepted the connection but did not answer within 0.5 s.")
    assert READ_TIMEOUT_ENV in message
    assert elapsed < 4, f"took {elapsed:.1f} s"
    assert len(silent.accepted) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_host_that_does_not_complete_the_connection_hits_the_connect_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = SilentServer(accept=False, backlog=0, lifetime_s=10.0)
    try:
        monkeypatch.setenv(CONNECT_TIMEOUT_ENV, "0.5")
        url = f"http://{server.host}/{NPZ}"
        start = time.monotonic()
        with pytest.raises(dl.DownloadError) as raised:
            dl.download_file(url, tmp_path / "x.npz", get_info("pneumoniamnist").sha256, progress=False)
        elapsed = time.monotonic() - start
    finally:
        server.stop()
    assert f"could not connect to {server.host} within 0.5 s" in str(raised.value)
    assert elapsed < 4, f"took {elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan"])
def test_a_bad_timeout_setting_is_named(value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(READ_TIMEOUT_ENV, value)
    with pytest.raises(CourseError, match=f"{READ_TIMEOUT_ENV}={value!r}.*positive number of seconds"):
        dl.download_file("http://127.0.0.1:9/x", tmp_path / "x", None, progress=False)
    assert list(tmp_path.iterdir()) == []
