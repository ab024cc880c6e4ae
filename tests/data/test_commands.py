"""``tlcourse data verify`` and ``fetch`` (tlcourse/data/commands.py) on a damaged dataset cache.

A damaged or missing file in the cache is named by ``verify``, and ``fetch`` downloads exactly
the bad files again (from a real loopback mirror of the course's data) instead of calling the
dataset ready; a damaged shared copy (``TLCOURSE_DATA``) is named and never written to.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from filesnap import snapshot
from loopback_server import LoopbackServer, loopback_server, shared_data_dir  # noqa: F401
from tlcourse.course.cli import main
from tlcourse.data import download as dl
from tlcourse.data.commands import fetch
from tlcourse.data.registry import get_info
from tlcourse.errors import CourseError

DATA = shared_data_dir()
NPZ = "pneumoniamnist/pneumoniamnist.npz"

pytestmark = pytest.mark.usefixtures("shared_data")  # no data is a failure, not a skip


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
