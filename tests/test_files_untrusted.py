"""Files for and from others: nothing overwritten, nothing unreadable, nothing corrupt called ready.

Four promises, each checked on real files and real sockets:

1. ``tlcourse pack --out FILE`` never replaces an existing file without ``--force``, and a
   folder it cannot write to gives one clear line, no traceback and no half-written pack.
2. Files the course writes atomically get the mode a plain ``open()`` would give them
   (``0o666 & ~umask``), so packs, exported models and run summaries are readable by the other
   users of a shared classroom machine.
3. A damaged or missing file in the dataset cache is named by ``tlcourse data verify``, and
   ``tlcourse data fetch`` downloads exactly the bad files again instead of calling the
   dataset ready.
4. A mirror that accepts connections but never answers fails in seconds (bounded connect and
   read timeouts), naming the host.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

from filesnap import snapshot
from loopback_server import LoopbackServer, loopback_server, shared_data_dir  # noqa: F401
from tlcourse import atomic, pack
from tlcourse.course import results
from tlcourse.cli import main
from tlcourse.data import download as dl
from tlcourse.data.commands import fetch
from tlcourse.data.registry import get_info
from tlcourse.errors import CourseError
from tlcourse.pack import MANIFEST_NAME, build_pack

DATA = shared_data_dir()
NPZ = "pneumoniamnist/pneumoniamnist.npz"
# The settings a classroom (or a test) uses to bound how long a silent server is waited for.
CONNECT_TIMEOUT_ENV = "TLCOURSE_CONNECT_TIMEOUT"
READ_TIMEOUT_ENV = "TLCOURSE_READ_TIMEOUT"

pytestmark = pytest.mark.skipif(not (DATA / "plantvillage").is_dir(), reason=f"course data folder {DATA} missing")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


_PROGRESS_BAR = re.compile(r"^\s*$|^[\w ]+:\s+\d+%\|")  # tqdm's lines (cleared on a terminal)


def error_lines(err: str) -> list[str]:
    """What a learner reads on stderr once the progress bars are gone; never a traceback."""
    assert "Traceback" not in err
    return [s for s in re.split(r"[\r\n]", err) if not _PROGRESS_BAR.match(s)]


def one_line_error(err: str) -> str:
    """The CLI's error: exactly one line, no traceback."""
    lines = error_lines(err)
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def small_packs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tlcourse pack`` builds the smallest real pack (PneumoniaMNIST, 2.4 MB), not all assets."""
    monkeypatch.setenv("TLCOURSE_DATA", str(DATA))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(pack, "pack_assets", lambda: ["pneumoniamnist"])


@pytest.fixture
def umask() -> Iterator[None]:
    """Run a test under umask 022 (the common default), whatever the test runner's umask is."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ============================================================ 1. pack --out


def test_pack_refuses_to_overwrite_an_existing_file_unless_forced(
    tmp_path: Path, small_packs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "classroom.tar"
    out.parent.mkdir()
    out.write_bytes(b"last week's pack, handed out already\n")
    before = snapshot(out.parent)

    assert main(["pack", "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line == (
        f"tlcourse pack: The pack file {out} already exists; tlcourse pack never overwrites a file. "
        "Pick another --out FILE, or add --force to replace it."
    )
    assert snapshot(out.parent) == before  # untouched, and no temporary file left beside it

    assert main(["pack", "--out", str(out), "--force"]) == 0
    assert "Wrote" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["classroom.tar"]
    with tarfile.open(out, "r:") as tar:
        assert tar.getnames() == [MANIFEST_NAME, f"data/{NPZ}"]
        assert tar.extractfile(f"data/{NPZ}").read() == (DATA / NPZ).read_bytes()


@pytest.mark.parametrize("depth", [1, 2])
def test_pack_under_a_regular_file_says_so_in_one_line(
    depth: int, tmp_path: Path, small_packs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out notes.txt/classroom.tar`` (or deeper): the folder cannot exist, even for root."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("the teacher's notes\n")
    out = blocker.joinpath(*["sub"] * (depth - 1), "classroom.tar")
    before = snapshot(tmp_path)
    assert main(["pack", "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"tlcourse pack: Cannot write --out {out}: {blocker} is a file, not a folder.")
    assert "Nothing was written" in line
    assert snapshot(tmp_path) == before


@contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """Writes that would make a file larger than ``nbytes`` fail with EFBIG, for root too: what a
    full USB stick or a quota looks like to a program (the soft limit only, restored after)."""
    resource = pytest.importorskip("resource")
    import signal

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the signal kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes if hard == resource.RLIM_INFINITY else min(nbytes, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_pack_that_cannot_be_written_fails_in_one_line_and_leaves_nothing(
    tmp_path: Path, small_packs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The disk refuses the pack half-way through writing it."""
    out = tmp_path / "out" / "classroom.tar"
    out.parent.mkdir()
    (out.parent / "README.txt").write_text("other files in the folder stay as they are\n")
    before = snapshot(out.parent)
    with file_size_limit(1 << 20):  # the 2.4 MB pack stops after 1 MB
        status = main(["pack", "--out", str(out)])
    assert status == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"tlcourse pack: Could not write the pack {out}: File too large.")
    assert "Nothing was written" in line
    assert snapshot(out.parent) == before  # no pack, no half pack, no temporary file

    out.write_bytes(b"last week's pack\n")  # with --force, the old pack survives the failure
    before = snapshot(out.parent)
    with file_size_limit(1 << 20):
        assert main(["pack", "--out", str(out), "--force"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "Nothing was written" in line and "The file that was at --out is unchanged." in line
    assert snapshot(out.parent) == before


# ============================================================ 2. modes follow the umask


def _tiny_export(target: Path) -> Path:
    """A real exported model: a small CNN captured with torch.export and written by tlcourse."""
    from tlcourse.deploy import export_model
    from tlcourse.models import get_spec

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    pre = get_spec("mobilenet_v2").preprocessing.at(32)
    return export_model(model, target, class_names=["healthy", "sick"], preprocessing=pre,
                        provenance={"backbone": "tiny", "dataset": "none"})


def test_export_pack_summary_progress_and_results_files_are_readable_by_others(
    tmp_path: Path, umask: None, small_packs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlcourse.exercises import progress
    from tlcourse.course.runner import NotebookResult, RunSummary, write_report

    written = {
        "export": _tiny_export(tmp_path / "model.pt2"),
        "pack": build_pack(tmp_path / "classroom.tar", progress=False).path,
    }
    results.write_json_atomic(tmp_path / "run" / "summary.json", {"profile": "smoke"})
    written["summary.json"] = tmp_path / "run" / "summary.json"
    summary = RunSummary("smoke", {}, "2024-05-01T10:00:00", tmp_path / "run", "python3", None,
                         notebooks=[NotebookResult("00", "ok", 1.0, "00.ipynb", {})])
    written["report.md"] = write_report(summary)
    written["progress"] = tmp_path / "progress.json"
    progress.append_entry(written["progress"], {"learner": "ada", "bank": "b", "question": "q1",
                                                "correct": True, "time": "2024-05-01T10:00:00+00:00"})
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "run" / "00.results.json"))
    results.record(accuracy=0.5)
    written["results"] = tmp_path / "run" / "00.results.json"
    import matplotlib.pyplot as plt

    fig = plt.figure()
    written["figure"] = results.record_figure(fig, "curve")
    plt.close(fig)
    written["text"] = atomic.write_text("hello\n", tmp_path / "note.txt")
    written["checkpoint"] = atomic.torch_save({"epoch": 1}, tmp_path / "ckpt.pt")

    assert {name: oct(mode_of(path)) for name, path in written.items()} == {name: "0o644" for name in written}
    assert json.loads(written["results"].read_text())["values"] == {"accuracy": 0.5}


@pytest.mark.parametrize("mask, expected", [(0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask_not_a_fixed_mode(mask: int, expected: int, tmp_path: Path) -> None:
    old = os.umask(mask)
    try:
        paths = [atomic.write_text("x\n", tmp_path / "a.txt"), atomic.write_bytes(b"x", tmp_path / "b.bin")]
        with atomic.atomic_path(tmp_path / "c.bin") as tmp:
            tmp.write_bytes(b"x")
        paths.append(tmp_path / "c.bin")
    finally:
        os.umask(old)
    assert [mode_of(p) for p in paths] == [expected] * 3


def test_replacing_a_file_keeps_the_mode_its_owner_gave_it(tmp_path: Path, umask: None) -> None:
    """A progress file its owner shares with the class group only stays that way after a write."""
    target = tmp_path / "progress.json"
    atomic.write_text("{}\n", target)
    os.chmod(target, 0o640)
    atomic.write_text('{"entries": []}\n', target)
    assert oct(mode_of(target)) == "0o640" and target.read_text() == '{"entries": []}\n'


def test_extracted_dataset_folders_are_readable_by_others(tmp_path: Path, umask: None) -> None:
    archive = tmp_path / "pv.zip"
    photo = next((DATA / "plantvillage" / "Potato___healthy").glob("*.jpg"))
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(photo, f"PlantVillage/Potato___healthy/{photo.name}")
    dest = dl.extract_zip(archive, tmp_path / "data" / "plantvillage", members_prefix="PlantVillage/")
    assert oct(mode_of(dest)) == "0o755"
    assert oct(mode_of(dest / "Potato___healthy")) == "0o755"
    assert (dest / "Potato___healthy" / photo.name).read_bytes() == photo.read_bytes()


# ============================================================ 3. a damaged dataset cache


@pytest.fixture
def cached_plantvillage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        loopback_server: LoopbackServer) -> Path:  # noqa: F811
    """PlantVillage as ``tlcourse data fetch`` leaves it in an empty cache, with a mirror."""
    cache = tmp_path / "cache"
    monkeypatch.delenv("TLCOURSE_DATA", raising=False)
    monkeypatch.setenv("TLCOURSE_CACHE", str(cache))
    monkeypatch.setenv(dl.MIRROR_ENV, loopback_server.base_url)
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    shutil.copytree(DATA / "plantvillage", cache / "data" / "plantvillage")
    return cache / "data"


def _flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size: only the sha256 can tell
    path.write_bytes(bytes(raw))


def _same_as_source(data: Path) -> None:
    """Every file of the cached dataset is the recorded one, and nothing else is there."""
    cached = {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (data / "plantvillage").rglob("*") if p.is_file()}
    assert cached == {e.path: e.sha256 for e in get_info("plantvillage").manifest}


def test_fetch_downloads_exactly_the_damaged_and_missing_files_and_verify_names_them(
    cached_plantvillage: Path, loopback_server: LoopbackServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    data = cached_plantvillage
    manifest = get_info("plantvillage").manifest
    damaged, gone, damaged_too = manifest[3], manifest[1000], manifest[2000]

    # one damaged file: fetch must not call the dataset ready
    _flip_a_byte(data / damaged.path)
    assert main(["data", "verify", "plantvillage"]) == 1
    out = capsys.readouterr().out
    assert f"damaged (sha256 mismatch): {data / damaged.path}" in out
    assert f"plantvillage: 1 of {len(manifest):,} files failed in {data}" in out
    assert main(["data", "fetch", "plantvillage"]) == 0
    out = capsys.readouterr().out
    assert f"plantvillage: 1 of {len(manifest):,} files in {data} are damaged or missing" in out
    assert f"plantvillage: ready in {data}" in out and "already available" not in out
    assert loopback_server.requests == [(damaged.path, None)]
    _same_as_source(data)

    # one damaged, one deleted: verify names each, fetch asks for exactly those two
    _flip_a_byte(data / damaged_too.path)
    (data / gone.path).unlink()
    assert main(["data", "verify", "plantvillage"]) == 1
    out = capsys.readouterr().out
    assert f"missing: {data / gone.path}" in out
    assert f"damaged (sha256 mismatch): {data / damaged_too.path}" in out
    assert f"plantvillage: 2 of {len(manifest):,} files failed in {data}" in out
    loopback_server.requests.clear()
    assert main(["data", "fetch", "plantvillage"]) == 0
    assert sorted(loopback_server.requests) == sorted([(gone.path, None), (damaged_too.path, None)])
    _same_as_source(data)
    assert main(["data", "verify", "plantvillage"]) == 0
    assert f"plantvillage: all {len(manifest):,} files match their sha256 ({data})" in capsys.readouterr().out


def test_fetch_on_an_intact_cache_makes_no_request(
    cached_plantvillage: Path, loopback_server: LoopbackServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    before = snapshot(cached_plantvillage)
    assert main(["data", "fetch", "plantvillage"]) == 0
    out = capsys.readouterr().out
    assert "every file matches its sha256" in out and f"plantvillage: ready in {cached_plantvillage}" in out
    assert loopback_server.requests == []
    assert snapshot(cached_plantvillage) == before


def test_fetch_refuses_to_call_a_damaged_shared_copy_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loopback_server: LoopbackServer  # noqa: F811
) -> None:
    """A damaged file in TLCOURSE_DATA (a shared drive tlcourse never writes to) is named, and
    the learner is told how to get a good copy; the shared folder is left as it was."""
    shared = tmp_path / "shared"
    (shared / "pneumoniamnist").mkdir(parents=True)
    shutil.copyfile(DATA / NPZ, shared / NPZ)
    _flip_a_byte(shared / NPZ)
    monkeypatch.setenv("TLCOURSE_DATA", str(shared))
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(dl.MIRROR_ENV, loopback_server.base_url)
    before = snapshot(shared)
    with pytest.raises(CourseError) as info:
        fetch("pneumoniamnist", progress=False)
    message = str(info.value)
    assert f"damaged (sha256 mismatch): {shared / NPZ}" in message
    assert "TLCOURSE_DATA" in message and "tlcourse never writes there" in message
    assert snapshot(shared) == before and loopback_server.requests == []


# ============================================================ 4. a mirror that never answers


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
