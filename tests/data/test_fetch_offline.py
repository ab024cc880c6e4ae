"""Fetching datasets on a machine with no network, a corrupt mirror or an interrupted link.

Each test asserts the message a learner reads (what was wrong, where, what to do) and that
nothing half-downloaded or wrong is left where a loader would trust it. Inputs are real:
the PneumoniaMNIST file from ``TLCOURSE_DATA``, served over a real loopback socket, and the
ELPV package's files.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from loopback_server import LoopbackServer, closed_port, loopback_server, shared_data_dir  # noqa: F401
from tlcourse.data import download as dl
from tlcourse.data.commands import fetch
from tlcourse.data.registry import get_info, locate
from tlcourse.errors import AssetNotFoundError, ChecksumError

DATA = shared_data_dir()
NPZ = "pneumoniamnist/pneumoniamnist.npz"

pytestmark = pytest.mark.usefixtures("shared_data")  # no data is a failure, not a skip


def corrupt_mirror(tmp_path: Path) -> Path:
    """A classroom mirror whose PneumoniaMNIST file has one byte flipped (same size)."""
    mirror = tmp_path / "mirror"
    (mirror / "pneumoniamnist").mkdir(parents=True)
    data = bytearray((DATA / NPZ).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (mirror / NPZ).write_bytes(bytes(data))
    return mirror


def test_checksum_mismatch_deletes_the_download(
    tmp_path: Path, offline_cache: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = corrupt_mirror(tmp_path)
    monkeypatch.setenv(dl.MIRROR_ENV, str(mirror))
    with pytest.raises(ChecksumError) as info:
        fetch("pneumoniamnist", progress=False)
    message = str(info.value)
    dest = offline_cache["cache"] / "data" / NPZ
    assert "pneumoniamnist.npz did not match its recorded size and sha256" in message
    assert f"The downloaded file was deleted and not used ({dest} was not written)" in message
    assert f"The mirror ({dl.MIRROR_ENV}={mirror}) may hold a corrupt or different copy" in message
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()
    assert [p for p in (offline_cache["cache"] / "data").rglob("*") if p.is_file()] == []
    with pytest.raises(AssetNotFoundError):  # and nothing will load it later
        locate("pneumoniamnist")


def test_no_network_and_no_cache_says_which_asset_where_and_how(
    offline_cache: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = offline_cache["cache"]
    for name in ("plantvillage", "hymenoptera", "pneumoniamnist"):
        with pytest.raises(AssetNotFoundError) as info:
            locate(name)
        message = str(info.value)
        assert f"Dataset {name!r}" in message and str(cache / "data") in message
        assert f"tlcourse data fetch {name}" in message and "tlcourse unpack FILE" in message
    # ... and fetching it with the network down (a mirror nobody answers on):
    port = closed_port()
    monkeypatch.setenv(dl.MIRROR_ENV, f"http://127.0.0.1:{port}/")
    with pytest.raises(dl.DownloadError) as info:
        fetch("pneumoniamnist", progress=False)
    message = str(info.value)
    assert f"Could not download http://127.0.0.1:{port}/{NPZ} to {cache / 'data' / NPZ} (3 attempts)" in message
    assert "Check the network connection" in message and "`tlcourse unpack FILE`" in message
    assert not (cache / "data" / NPZ).exists()


def test_elpv_copy_from_a_pack_is_found_when_the_package_is_missing(
    tmp_path: Path, offline_cache: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlcourse.data import registry

    package = locate("elpv")
    monkeypatch.setattr(registry, "package_data_dir", lambda info: None)
    with pytest.raises(AssetNotFoundError) as info:
        locate("elpv")
    copy = offline_cache["cache"] / "data" / "elpv_dataset"
    assert "not installed" in str(info.value) and str(copy) in str(info.value)
    assert "tlcourse unpack FILE" in str(info.value)
    for entry in get_info("elpv").manifest:  # what `tlcourse unpack` leaves there (as links)
        (copy / entry.path).parent.mkdir(parents=True, exist_ok=True)
        (copy / entry.path).symlink_to(package / entry.path)
    assert locate("elpv") == copy


def test_interrupted_download_resumes_and_a_stale_part_restarts_cleanly(
    loopback_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    info = get_info("pneumoniamnist")
    dest = tmp_path / "cache" / NPZ
    part = dest.with_name(dest.name + ".part")
    url = loopback_server.url_for(NPZ)
    loopback_server.truncate_once[NPZ] = 1_000_000  # the network drops a megabyte in
    with pytest.raises(dl.DownloadError) as err:
        dl.download_file(url, dest, info.sha256, info.size, retries=0, progress=False)
    assert f"The 1,000,000 bytes that arrived are kept in {part}" in str(err.value)
    assert "running the same command again resumes from there" in str(err.value)
    assert not dest.exists() and part.stat().st_size == 1_000_000
    dl.download_file(url, dest, info.sha256, info.size, progress=False)
    assert loopback_server.requests_for(NPZ) == [None, "bytes=1000000-"]
    assert dest.read_bytes() == (DATA / NPZ).read_bytes() and not part.exists()

    # A .part left by a killed run of *another* version of the file: resumed, found wrong by
    # its sha256, fetched once more whole. The result is right and nothing stale remains.
    dest2 = tmp_path / "cache2" / NPZ
    part2 = dest2.with_name(dest2.name + ".part")
    part2.parent.mkdir(parents=True)
    part2.write_bytes(b"\0" * 700_000)
    dl.download_file(url, dest2, info.sha256, info.size, progress=False)
    assert loopback_server.requests_for(NPZ)[2:] == ["bytes=700000-", None]
    assert dest2.read_bytes() == (DATA / NPZ).read_bytes() and not part2.exists()
