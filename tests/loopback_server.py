"""A real HTTP server on 127.0.0.1 that serves a folder, with switches to misbehave on purpose.

Why: the downloader's promises (resume with ``Range``, refuse corrupt bytes, restart when the
server ignores ``Range``) are only worth something if they are tested against real sockets
and real HTTP, not mocks. This server speaks plain HTTP/1.0 from ``http.server`` and can:

- ``corrupt``: a set of relative paths whose bytes are altered (same length, one byte flipped
  in the middle, so only the sha256 can tell);
- ``truncate_once``: ``{path: nbytes}``: the first request for ``path`` announces the full
  ``Content-Length`` but the connection closes after ``nbytes`` of body;
- ``stall_once``: ``{path: nbytes}``: the first request sends ``nbytes`` and then goes silent
  for ``stall_seconds`` (to trigger the client's socket timeout);
- ``status_override``: ``{path: status}``: answer with that status; ``200`` means "serve the
  whole file and ignore ``Range``", as some servers do;
- ``ignore_range``: ignore ``Range`` for every path.

Every request is logged in ``requests`` as ``(relative_path, range_header_or_None)``.

Safety: it binds only to a loopback address on a random free port, refuses paths outside its
folder, answers at most ``max_requests`` requests, and stops itself after ``lifetime_s``
seconds even if a test forgets to.

Use it as a context manager (``with LoopbackServer(root) as server: server.url_for(path)``) or
through the pytest fixtures ``loopback_server`` (the course's data folder) and
``serve_directory`` (a factory for any folder); a test module imports the fixtures it uses.
"""
from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

LOOPBACK_HOSTS = ("127.0.0.1", "::1")


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): connections are refused,
    which is what a machine without network sees."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_data_dir() -> Path:
    """The course's read-only data folder: ``TLCOURSE_DATA``, else ``../shared/data``."""
    value = os.environ.get("TLCOURSE_DATA")
    if value:
        return Path(value).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(start, end_inclusive)`` for a single ``bytes=`` range, None to ignore, "416" if bad."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes="):].strip().partition("-")
    try:
        if first == "":  # suffix range: the last N bytes
            n = int(last)
            return (max(size - n, 0), size - 1) if n > 0 else "416"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "416"
    return start, min(end, size - 1)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    timeout = 10  # a client that connects and says nothing cannot hold a thread for long

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # the request log below is what tests read; keep pytest output clean

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        owner = self.server.owner
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        range_header = self.headers.get("Range")
        with owner.lock:
            owner.requests.append((rel, range_header))
            over_budget = len(owner.requests) > owner.max_requests
            override = owner.status_override.get(rel)
            truncate = owner.truncate_once.pop(rel, None)
            stall = owner.stall_once.pop(rel, None)
            corrupt = rel in owner.corrupt
            ignore_range = owner.ignore_range or override == 200
        if over_budget:
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "loopback server request budget spent")
            return
        if override is not None and override != 200:
            self.send_error(override)
            return
        target = (owner.root / rel).resolve()
        if not rel or not target.is_relative_to(owner.root) or not target.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        data = target.read_bytes()
        if corrupt and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
        span = None if ignore_range else _parse_range(range_header, len(data))
        if span == "416":
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if span is None:
            body = data
            self.send_response(HTTPStatus.OK)
        else:
            start, end = span
            body = data[start:end + 1]
            self.send_response(HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        try:
            if truncate is not None:
                self.wfile.write(body[:truncate])
                self.wfile.flush()
                self.close_connection = True
                return  # HTTP/1.0: the server closes the socket, short of Content-Length
            if stall is not None:
                self.wfile.write(body[:stall])
                self.wfile.flush()
                owner.stopping.wait(owner.stall_seconds)
                self.close_connection = True
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (as a timing-out client should); nothing to clean up


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait on a handler stalled on purpose
    owner: "LoopbackServer"


class LoopbackServer:
    """Serve ``root`` over HTTP on a loopback address; see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        corrupt: Iterable[str] = (),
        truncate_once: dict[str, int] | None = None,
        stall_once: dict[str, int] | None = None,
        stall_seconds: float = 2.0,
        status_override: dict[str, int] | None = None,
        ignore_range: bool = False,
        max_requests: int = 5000,
        lifetime_s: float = 120.0,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"LoopbackServer binds only to {LOOPBACK_HOSTS}, not {host!r}")
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"LoopbackServer: {self.root} is not a folder")
        self.host = host
        self.corrupt: set[str] = set(corrupt)
        self.truncate_once: dict[str, int] = dict(truncate_once or {})
        self.stall_once: dict[str, int] = dict(stall_once or {})
        self.stall_seconds = stall_seconds
        self.status_override: dict[str, int] = dict(status_override or {})
        self.ignore_range = ignore_range
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> "LoopbackServer":
        if self._httpd is not None:
            return self
        server_cls = _Server
        if ":" in self.host:
            server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        httpd = server_cls((self.host, 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"loopback-http-{self.port}",
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice and from the lifetime timer."""
        self.stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LoopbackServer is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/``: what ``TLCOURSE_MIRROR`` is set to in tests."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def url_for(self, relative_path: str) -> str:
        """The URL of a file under ``root`` (spaces and other characters percent-encoded)."""
        return self.base_url + urllib.parse.quote(relative_path.lstrip("/"), safe="/")

    def requests_for(self, relative_path: str) -> list[str | None]:
        """The ``Range`` headers of the requests made for one path, in order."""
        with self.lock:
            return [rng for path, rng in self.requests if path == relative_path]


@pytest.fixture
def serve_directory() -> Iterator:
    """Factory fixture: ``serve_directory(root, **switches)`` -> a started LoopbackServer.

    Every server it started is stopped when the test ends.
    """
    started: list[LoopbackServer] = []

    def start(root: str | os.PathLike, **switches: object) -> LoopbackServer:
        server = LoopbackServer(root, **switches).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def loopback_server(shared_data: Path) -> Iterator[LoopbackServer]:
    """A LoopbackServer over the course's data folder (switches set on it by the test).

    ``shared_data`` (tests/conftest.py) fails the test when the data folder is missing: CI
    always has it, so a missing folder is a broken set-up, never a reason to skip.
    """
    with LoopbackServer(shared_data) as server:
        yield server
