"""The downloader against a real HTTP server on 127.0.0.1 serving the course's real data files.

Every test moves real bytes (PlantVillage JPEGs, the 2.4 MB PneumoniaMNIST npz) over a real
socket; the server's switches make it corrupt, cut short, stall or ignore ``Range`` on purpose.
"""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from filesnap import mode_of
from loopback_server import LoopbackServer, closed_port, loopback_server, serve_directory, shared_data_dir  # noqa: F401
from tlcourse.data import download as dl
from tlcourse.data.download import (
    DownloadError,
    UnsafeArchiveError,
    dataset_pooch,
    download_file,
    extract_zip,
    fetch_files,
)
from tlcourse.data.registry import ManifestEntry, get_info
from tlcourse.errors import AssetNotFoundError, ChecksumError, CourseError, InvalidParameterError

DATA = shared_data_dir()
pytestmark = pytest.mark.usefixtures("shared_data")  # no data is a failure, not a skip

# Recorded in the data folder's README (the values a dataset registry carries).
NPZ = "pneumoniamnist/pneumoniamnist.npz"
NPZ_SHA = "f36c2b3e34de9d60c5c734118bc6daff281eaf76b67a57d26ad958da948274b0"
NPZ_SIZE = 2_486_856


def plantvillage_files(n: int) -> list[tuple[str, str, int]]:
    """The first ``n`` PlantVillage files as (path relative to the data folder, sha256, bytes),
    read from the recorded SHA256SUMS and SOURCES files, not computed here."""
    sizes = {}
    for line in (DATA / "plantvillage_SOURCES.tsv").read_text().splitlines()[1:]:
        staged, _, _, nbytes = line.split("\t")
        sizes[staged] = int(nbytes)
    out = []
    for line in (DATA / "plantvillage_SHA256SUMS.txt").read_text().splitlines()[:n]:
        sha, rel = line.split("  ", 1)
        rel = "plantvillage/" + rel
        out.append((rel, sha, sizes[rel]))
    return out


def plantvillage_entries(n: int) -> list[ManifestEntry]:
    """The first ``n`` PlantVillage files as entries of the dataset's pooch registry."""
    return [ManifestEntry(rel, sha, size) for rel, sha, size in plantvillage_files(n)]


def plantvillage_pooch(monkeypatch: pytest.MonkeyPatch, mirror: str, folder: Path):
    """PlantVillage's pooch as ``tlcourse data fetch`` builds it, with ``TLCOURSE_MIRROR=mirror``."""
    monkeypatch.setenv("TLCOURSE_MIRROR", mirror)
    return dataset_pooch(get_info("plantvillage"), folder)


@pytest.fixture(autouse=True)
def _fast_and_unmirrored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)


def closed_port_url() -> str:
    """A loopback URL on a port nobody listens on."""
    return f"http://127.0.0.1:{closed_port()}/pneumoniamnist/pneumoniamnist.npz"


# --- one file ------------------------------------------------------------------------------


def test_happy_path_plantvillage(loopback_server: LoopbackServer, tmp_path: Path) -> None:
    for i, (rel, sha, size) in enumerate(plantvillage_files(3)):
        dest = tmp_path / "pv" / Path(rel).name
        got = download_file(loopback_server.url_for(rel), dest, sha, size, progress=(i == 0))
        assert got == dest
        assert dest.read_bytes() == (DATA / rel).read_bytes()
        assert not dest.with_name(dest.name + ".part").exists()
        assert loopback_server.requests_for(rel) == [None]  # one plain request, no Range
    assert sorted(p.name for p in (tmp_path / "pv").iterdir()) == sorted(
        Path(rel).name for rel, _, _ in plantvillage_files(3)
    )


def test_corrupt_file_is_refused_and_deleted(loopback_server: LoopbackServer, tmp_path: Path) -> None:
    loopback_server.corrupt.add(NPZ)
    dest = tmp_path / "pneumoniamnist.npz"
    dest.write_bytes(b"an old damaged copy")  # a wrong file at dest must not survive either
    url = loopback_server.url_for(NPZ)
    with pytest.raises(ChecksumError) as info:
        download_file(url, dest, NPZ_SHA, NPZ_SIZE, progress=False)
    message = str(info.value)
    assert url in message
    assert "expected f36c2b3e34de..." in message
    assert "deleted and not used" in message
    assert "Try again" in message and "TLCOURSE_MIRROR" in message
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".part").exists()
    assert list(tmp_path.iterdir()) == []
    assert loopback_server.requests_for(NPZ) == [None]  # a whole fresh copy was not retried


def test_interrupted_transfer_resumes_with_range(
    loopback_server: LoopbackServer, tmp_path: Path
) -> None:
    loopback_server.truncate_once[NPZ] = 1_000_000
    dest = tmp_path / "x.npz"
    download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False)
    assert loopback_server.requests_for(NPZ) == [None, "bytes=1000000-"]
    assert dest.read_bytes() == (DATA / NPZ).read_bytes()
    assert not dest.with_name("x.npz.part").exists()


def test_socket_timeout_resumes(serve_directory, tmp_path: Path) -> None:
    server = serve_directory(DATA, stall_once={NPZ: 300_000}, stall_seconds=5.0)
    dest = tmp_path / "x.npz"
    download_file(server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False, timeout=0.5)
    assert server.requests_for(NPZ) == [None, "bytes=300000-"]
    assert dest.read_bytes() == (DATA / NPZ).read_bytes()


def test_stale_part_from_earlier_run_is_resumed(
    loopback_server: LoopbackServer, tmp_path: Path
) -> None:
    original = (DATA / NPZ).read_bytes()
    dest = tmp_path / "x.npz"
    dest.with_name("x.npz.part").write_bytes(original[:700_000])
    download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False)
    assert loopback_server.requests_for(NPZ) == ["bytes=700000-"]
    assert dest.read_bytes() == original


def test_stale_part_of_another_version_is_fetched_again_whole(
    loopback_server: LoopbackServer, tmp_path: Path
) -> None:
    dest = tmp_path / "x.npz"
    dest.with_name("x.npz.part").write_bytes(b"\0" * 700_000)  # not a prefix of the real file
    download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False)
    assert loopback_server.requests_for(NPZ) == ["bytes=700000-", None]
    assert dest.read_bytes() == (DATA / NPZ).read_bytes()


def test_part_longer_than_size_restarts(loopback_server: LoopbackServer, tmp_path: Path) -> None:
    dest = tmp_path / "x.npz"
    dest.with_name("x.npz.part").write_bytes(b"\1" * (NPZ_SIZE + 10))
    download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False)
    assert loopback_server.requests_for(NPZ) == [None]
    assert dest.read_bytes() == (DATA / NPZ).read_bytes()


def test_server_ignoring_range_restarts_cleanly(
    loopback_server: LoopbackServer, tmp_path: Path
) -> None:
    original = (DATA / NPZ).read_bytes()
    loopback_server.status_override[NPZ] = 200  # answers 200 + the whole file to a Range request
    dest = tmp_path / "x.npz"
    dest.with_name("x.npz.part").write_bytes(original[:700_000])
    download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False)
    assert loopback_server.requests_for(NPZ) == ["bytes=700000-"]
    assert dest.read_bytes() == original  # not 700,000 bytes twice


def test_range_not_satisfiable_restarts(loopback_server: LoopbackServer, tmp_path: Path) -> None:
    dest = tmp_path / "x.npz"
    dest.with_name("x.npz.part").write_bytes(b"\2" * NPZ_SIZE)  # size unknown to the caller
    download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, None, progress=False)
    assert loopback_server.requests_for(NPZ) == [f"bytes={NPZ_SIZE}-", None]  # 416, then whole
    assert dest.read_bytes() == (DATA / NPZ).read_bytes()


def test_present_verified_file_makes_no_request(
    loopback_server: LoopbackServer, tmp_path: Path
) -> None:
    dest = tmp_path / "x.npz"
    dest.write_bytes((DATA / NPZ).read_bytes())
    mtime = dest.stat().st_mtime_ns
    assert download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE) == dest
    assert loopback_server.requests == []
    assert dest.stat().st_mtime_ns == mtime


def test_unreachable_server_raises_download_error(tmp_path: Path) -> None:
    url = closed_port_url()
    dest = tmp_path / "x.npz"
    with pytest.raises(DownloadError) as info:
        download_file(url, dest, NPZ_SHA, NPZ_SIZE, progress=False, timeout=2.0, retries=1)
    assert isinstance(info.value, AssetNotFoundError) and isinstance(info.value, CourseError)
    message = str(info.value)
    assert url in message and "2 attempts" in message and "refused" in message.lower()
    assert "TLCOURSE_MIRROR" in message
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_http_errors_404_not_retried_503_retried(
    loopback_server: LoopbackServer, tmp_path: Path
) -> None:
    missing = "pneumoniamnist/no_such_file.npz"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(loopback_server.url_for(missing), tmp_path / "a", NPZ_SHA, progress=False)
    assert loopback_server.requests_for(missing) == [None]

    loopback_server.status_override[NPZ] = 503
    with pytest.raises(DownloadError, match="HTTP 503") as info:
        download_file(loopback_server.url_for(NPZ), tmp_path / "b", NPZ_SHA, retries=2, progress=False)
    assert loopback_server.requests_for(NPZ) == [None, None, None]
    assert "3 attempts" in str(info.value)


def test_truncated_until_out_of_retries_keeps_part_for_next_run(
    loopback_server: LoopbackServer, tmp_path: Path
) -> None:
    loopback_server.truncate_once[NPZ] = 400_000
    dest = tmp_path / "x.npz"
    with pytest.raises(DownloadError, match="closed after 400000") as info:
        download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False, retries=0)
    part = dest.with_name("x.npz.part")
    assert part.stat().st_size == 400_000 and str(part) in str(info.value)
    assert not dest.exists()
    download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False, retries=0)
    assert loopback_server.requests_for(NPZ) == [None, "bytes=400000-"]
    assert dest.read_bytes() == (DATA / NPZ).read_bytes()


def test_bad_sha256_parameter(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="64 hexadecimal"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", "abc123", progress=False)


# --- many files ----------------------------------------------------------------------------


def test_fetch_files_one_corrupt_among_several(
    loopback_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = plantvillage_files(6)
    pup = plantvillage_pooch(monkeypatch, loopback_server.base_url, tmp_path)
    bad_rel = files[2][0]
    present_rel = files[4][0]
    loopback_server.corrupt.add(bad_rel)
    (tmp_path / present_rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / present_rel).write_bytes((DATA / present_rel).read_bytes())

    with pytest.raises(DownloadError) as info:
        fetch_files(pup, plantvillage_entries(6), "PlantVillage", progress=False, workers=3)
    message = str(info.value)
    assert message.startswith("1 of 6 files could not be downloaded (ChecksumError)")
    assert Path(bad_rel).name in message
    assert [dest for _, dest, _ in info.value.failures] == [tmp_path / bad_rel]
    assert not (tmp_path / bad_rel).exists()
    for rel, _, _ in files:
        if rel != bad_rel:
            assert (tmp_path / rel).read_bytes() == (DATA / rel).read_bytes()
    assert loopback_server.requests_for(present_rel) == []

    # The mirror is fixed: a second run fetches only the missing file.
    loopback_server.corrupt.clear()
    before = len(loopback_server.requests)
    got = fetch_files(pup, plantvillage_entries(6), "PlantVillage", progress=True)
    assert got == [tmp_path / rel for rel, _, _ in files]
    assert loopback_server.requests[before:] == [(bad_rel, None)]
    assert (tmp_path / bad_rel).read_bytes() == (DATA / bad_rel).read_bytes()


def test_fetch_files_gives_up_early_when_the_source_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, a dataset of many files must fail in seconds, not after one request per file."""
    pup = plantvillage_pooch(monkeypatch, f"http://127.0.0.1:{closed_port()}", tmp_path)
    with pytest.raises(DownloadError) as info:
        fetch_files(pup, plantvillage_entries(40), "PlantVillage", progress=False, workers=2, give_up_after=4)
    message = str(info.value)
    tried = len(info.value.failures)
    assert 4 <= tried < 40  # the running downloads finish, the queued ones are never started
    assert message.startswith(f"The first {tried} of 40 files could not be downloaded")
    assert f"the other {40 - tried} were not tried" in message
    assert "TLCOURSE_MIRROR" in message and "tlcourse unpack" in message
    assert not any(tmp_path.rglob("*.jpg"))


def test_fetch_files_rejects_a_file_listed_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry, = plantvillage_entries(1)
    pup = plantvillage_pooch(monkeypatch, "http://127.0.0.1:9/", tmp_path)
    with pytest.raises(InvalidParameterError, match="appears twice"):
        fetch_files(pup, [entry, entry], progress=False)
    assert list(tmp_path.iterdir()) == []


# --- archives ------------------------------------------------------------------------------


def _real_zip(path: Path, files: list[tuple[str, str, int]], prefix: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__MACOSX/._junk", b"resource fork")
        for rel, _, _ in files:
            zf.write(DATA / rel, prefix + rel.split("/", 1)[1])


def test_extract_zip_with_prefix_is_complete_and_replaces(tmp_path: Path) -> None:
    files = plantvillage_files(3)
    archive = tmp_path / "pv.zip"
    _real_zip(archive, files, "PlantVillage/")
    out = tmp_path / "cache" / "plantvillage"
    assert extract_zip(archive, out, "PlantVillage/") == out
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert got == sorted(rel.split("/", 1)[1] for rel, _, _ in files)
    for rel, _, _ in files:
        assert (out / rel.split("/", 1)[1]).read_bytes() == (DATA / rel).read_bytes()
    # Extracting again replaces the folder as a whole (a stray file does not survive).
    (out / "stray.txt").write_text("left from before")
    extract_zip(archive, out, "PlantVillage")
    assert not (out / "stray.txt").exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["plantvillage"]


def test_unchecksummed_archive_download_then_extract(serve_directory, tmp_path: Path) -> None:
    """The hymenoptera flow: a zip with no recorded sha256 (its members are checked after
    extraction) is still resumed, length-checked and only then renamed into place."""
    files = plantvillage_files(4)
    served = tmp_path / "served"
    served.mkdir()
    _real_zip(served / "pv.zip", files, "PlantVillage/")
    zip_size = (served / "pv.zip").stat().st_size
    server = serve_directory(served, truncate_once={"pv.zip": zip_size // 3})
    dest = tmp_path / "downloads" / "pv.zip"
    with pytest.raises(DownloadError, match="closed after"):
        download_file(server.url_for("pv.zip"), dest, None, progress=False, retries=0)
    assert not dest.exists()  # a short body is never taken for the whole archive
    download_file(server.url_for("pv.zip"), dest, None, progress=False, retries=0)
    assert server.requests_for("pv.zip") == [None, f"bytes={zip_size // 3}-"]
    assert dest.read_bytes() == (served / "pv.zip").read_bytes()
    out = extract_zip(dest, tmp_path / "data" / "PlantVillage", "PlantVillage/")
    for rel, _, _ in files:
        assert (out / rel.split("/", 1)[1]).read_bytes() == (DATA / rel).read_bytes()
    # Present already: no request, even without a checksum.
    download_file(server.url_for("pv.zip"), dest, None, progress=False)
    assert len(server.requests) == 2
    # A recorded size that does not match is refused like a checksum mismatch.
    with pytest.raises(ChecksumError, match=f"got {zip_size:,} bytes, expected {zip_size + 1:,}"):
        download_file(server.url_for("pv.zip"), tmp_path / "other.zip", None, zip_size + 1, progress=False)
    assert not (tmp_path / "other.zip").exists()


@pytest.mark.parametrize("evil", ["../evil", "ok/../../evil", "/abs/evil", "C:\\evil"])
def test_extract_zip_rejects_escaping_members(tmp_path: Path, evil: str) -> None:
    archive = tmp_path / "evil.zip"
    (rel, _, _), = plantvillage_files(1)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(DATA / rel, "good/leaf.jpg")
        zf.writestr(zipfile.ZipInfo(evil), b"owned")
    out = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match="Nothing was extracted") as info:
        extract_zip(archive, out)
    assert repr(evil) in str(info.value)
    assert not out.exists()
    assert not any(p.name == "evil" for p in tmp_path.rglob("*"))
    assert not (tmp_path / "deep").exists()  # checked before anything was created


@pytest.mark.parametrize(
    ("name", "kind", "said"),
    [
        ("good\\leaf.jpg", stat.S_IFREG, "(a backslash)"),
        ("./leaf.jpg", stat.S_IFREG, "(an empty or '.' path component)"),
        ("good//leaf.jpg", stat.S_IFREG, "(an empty or '.' path component)"),
        ("good/leaf.jpg", stat.S_IFLNK, "contains a symbolic link, 'good/leaf.jpg'"),
        ("good/leaf.jpg", stat.S_IFIFO, "contains a special file (device or pipe), 'good/leaf.jpg'"),
    ],
)
def test_extract_zip_refuses_what_a_classroom_pack_refuses(tmp_path: Path, name: str, kind: int, said: str) -> None:
    """Zips and packs follow one rule set: no backslash, '.' or empty component, link or device."""
    (rel, _, _), = plantvillage_files(1)
    member = zipfile.ZipInfo(name)
    member.external_attr = (kind | 0o644) << 16
    archive = tmp_path / "odd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(DATA / rel, "other/leaf.jpg")
        zf.writestr(member, (DATA / rel).read_bytes())
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="Nothing was extracted") as info:
        extract_zip(archive, out)
    assert said in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.zip"]  # not even a temporary folder


def test_extract_zip_missing_prefix_and_damaged_archive(tmp_path: Path) -> None:
    archive = tmp_path / "pv.zip"
    _real_zip(archive, plantvillage_files(1), "PlantVillage/")
    with pytest.raises(CourseError, match="nothing under 'hymenoptera_data/'.*PlantVillage"):
        extract_zip(archive, tmp_path / "out", "hymenoptera_data/")
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(CourseError, match="damaged"):
        extract_zip(damaged, tmp_path / "out2")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_extracted_dataset_folders_are_readable_by_others(tmp_path: Path, umask: None) -> None:
    archive = tmp_path / "pv.zip"
    photo = next((DATA / "plantvillage" / "Potato___healthy").glob("*.jpg"))
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(photo, f"PlantVillage/Potato___healthy/{photo.name}")
    dest = dl.extract_zip(archive, tmp_path / "data" / "plantvillage", members_prefix="PlantVillage/")
    assert oct(mode_of(dest)) == "0o755"
    assert oct(mode_of(dest / "Potato___healthy")) == "0o755"
    assert (dest / "Potato___healthy" / photo.name).read_bytes() == photo.read_bytes()


# --- mirrors -------------------------------------------------------------------------------


def test_the_dataset_pooch_takes_its_base_url_from_the_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    info = get_info("plantvillage")
    entry = info.manifest[0]
    assert " " in entry.path  # PlantVillage names have spaces: the downloader quotes the URL
    monkeypatch.delenv("TLCOURSE_MIRROR", raising=False)
    pup = dataset_pooch(info, tmp_path)
    assert pup.get_url(entry.path) == info.source_url(entry)  # the recorded source
    assert pup.abspath == tmp_path and pup.registry[entry.path] == f"sha256:{entry.sha256}"
    assert len(pup.registry) == len(info.manifest) == 2250
    for mirror in ("http://127.0.0.1:8000", "http://host/course/data/"):
        pup = plantvillage_pooch(monkeypatch, mirror, tmp_path)
        assert pup.get_url(entry.path) == mirror.rstrip("/") + "/" + entry.path
    pup = plantvillage_pooch(monkeypatch, str(tmp_path), tmp_path)  # a folder: a file:// URL
    assert pup.get_url(entry.path) == tmp_path.as_uri() + "/" + entry.path
    with pytest.raises(InvalidParameterError, match="TLCOURSE_MIRROR='not a url or folder'"):
        plantvillage_pooch(monkeypatch, "not a url or folder", tmp_path)


def test_download_through_mirrors(
    loopback_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry, = plantvillage_entries(1)
    pup = plantvillage_pooch(monkeypatch, loopback_server.base_url, tmp_path / "http")
    assert fetch_files(pup, [entry], progress=False) == [tmp_path / "http" / entry.path]
    assert loopback_server.requests == [(entry.path, None)]
    # A plain folder works as a mirror too (file:// URLs, no server at all).
    pup = plantvillage_pooch(monkeypatch, str(DATA), tmp_path / "file")
    fetch_files(pup, [entry], progress=False)
    for name in ("http", "file"):
        assert (tmp_path / name / entry.path).read_bytes() == (DATA / entry.path).read_bytes()


def test_a_folder_mirror_without_the_file_names_it_and_is_not_asked_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry, = plantvillage_entries(1)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    pup = plantvillage_pooch(monkeypatch, str(mirror), tmp_path / "cache")
    with pytest.raises(DownloadError) as info:
        fetch_files(pup, [entry], progress=False)
    message = str(info.value)
    assert "(1 attempt)" in message  # a missing file is not there the next second either
    assert f"{mirror / entry.path}: No such file or directory" in message and "TLCOURSE_MIRROR" in message
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*")) and list(mirror.iterdir()) == []


def test_raw_spaces_in_url_are_quoted(loopback_server: LoopbackServer, tmp_path: Path) -> None:
    (rel, sha, size), = plantvillage_files(1)
    raw = loopback_server.base_url + rel  # unquoted, as a careless registry might write it
    download_file(raw, tmp_path / "x.jpg", sha, size, progress=False)
    assert loopback_server.requests == [(rel, None)]


# --- through pooch -------------------------------------------------------------------------


def test_a_damaged_cached_file_is_fetched_again_and_the_others_are_not_touched(
    loopback_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = plantvillage_entries(4)
    pup = plantvillage_pooch(monkeypatch, loopback_server.base_url, tmp_path)
    fetch_files(pup, entries, progress=False)
    damaged = tmp_path / entries[1].path
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size: only the sha256 in pooch's registry can tell
    damaged.write_bytes(bytes(raw))
    others = {e.path: (tmp_path / e.path).stat().st_mtime_ns for e in entries if e is not entries[1]}
    loopback_server.requests.clear()
    fetch_files(pup, entries, progress=False)
    assert loopback_server.requests == [(entries[1].path, None)]
    assert damaged.read_bytes() == (DATA / entries[1].path).read_bytes()
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in others} == others


def test_a_cut_connection_resumes_through_the_dataset_pooch(
    loopback_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = get_info("pneumoniamnist")
    monkeypatch.setenv("TLCOURSE_MIRROR", loopback_server.base_url)
    pup = dataset_pooch(info, tmp_path)
    loopback_server.truncate_once[NPZ] = 1_000_000
    with pytest.raises(DownloadError, match="The 1,000,000 bytes that arrived are kept"):
        fetch_files(pup, list(info.manifest), progress=False, retries=0)
    folder = tmp_path / "pneumoniamnist"
    assert sorted(p.name for p in folder.iterdir()) == ["pneumoniamnist.npz.part"]  # pooch's temporary file is gone
    assert fetch_files(pup, list(info.manifest), progress=False) == [tmp_path / NPZ]
    assert loopback_server.requests_for(NPZ) == [None, "bytes=1000000-"]
    assert (tmp_path / NPZ).read_bytes() == (DATA / NPZ).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["pneumoniamnist.npz"]


def test_a_run_killed_before_pooch_moves_the_file_is_finished_without_a_request(
    loopback_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pooch deletes its temporary file on any failure; the .part beside it keeps the bytes."""
    dest = tmp_path / "x.npz"
    real_rename = os.rename

    def killed(src, dst, *args, **kwargs):
        if Path(dst) == dest:
            raise KeyboardInterrupt
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False)
    monkeypatch.setattr(os, "rename", real_rename)
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz.part"]
    download_file(loopback_server.url_for(NPZ), dest, NPZ_SHA, NPZ_SIZE, progress=False)
    assert loopback_server.requests_for(NPZ) == [None]  # the kept bytes were verified, not fetched again
    assert dest.read_bytes() == (DATA / NPZ).read_bytes() and [p.name for p in tmp_path.iterdir()] == ["x.npz"]


def test_downloaded_files_are_readable_by_others(
    loopback_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: None
) -> None:
    """pooch's temporary file (0600) would become the dataset file; a shared cache needs 0644."""
    dest = download_file(loopback_server.url_for(NPZ), tmp_path / "x.npz", NPZ_SHA, NPZ_SIZE, progress=False)
    monkeypatch.setenv("TLCOURSE_MIRROR", str(DATA))  # the file:// mirror too
    pup = dataset_pooch(get_info("plantvillage"), tmp_path / "cache")
    got = fetch_files(pup, plantvillage_entries(2), progress=False)
    assert [oct(mode_of(p)) for p in [dest, *got]] == ["0o644"] * 3


def test_pooch_writes_no_line_per_file(
    loopback_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    pup = plantvillage_pooch(monkeypatch, loopback_server.base_url, tmp_path)
    fetch_files(pup, plantvillage_entries(3), progress=False)
    assert capfd.readouterr().err == ""  # pooch logs "Downloading file ..." for each at INFO


# --- numeric arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"timeout": float("inf")}, "download: timeout must be a positive number, got inf. Timeouts are in seconds, e.g. 30.", id="timeout=inf"),
        pytest.param({"connect_timeout": 0}, "download: connect_timeout must be a positive number, got 0. Timeouts are in seconds, e.g. 30.", id="connect_timeout=0"),
        pytest.param({"timeout": True}, "download: timeout must be a positive number, got True. Timeouts are in seconds, e.g. 30.", id="timeout=True"),
        pytest.param({"retries": True}, "download_file: retries must be an integer >= 0, got True.", id="retries=True"),
        pytest.param({"retries": -1}, "download_file: retries must be an integer >= 0, got -1.", id="retries=-1"),
    ],
)
def test_bad_timeouts_and_retries_are_refused_before_any_request(
    loopback_server: LoopbackServer, tmp_path: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        download_file(loopback_server.url_for(NPZ), tmp_path / "x.npz", NPZ_SHA, NPZ_SIZE, progress=False, **kwargs)
    assert str(info.value) == message
    assert loopback_server.requests_for(NPZ) == [] and list(tmp_path.iterdir()) == []


def test_workers_true_is_refused_before_any_request(
    loopback_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pup = plantvillage_pooch(monkeypatch, loopback_server.base_url, tmp_path)
    with pytest.raises(InvalidParameterError) as info:
        fetch_files(pup, plantvillage_entries(2), "x", progress=False, workers=True)
    assert str(info.value) == "fetch_files: workers must be an integer >= 1, got True."
    assert loopback_server.requests == [] and list(tmp_path.iterdir()) == []


def test_numpy_sizes_retries_and_timeouts_are_accepted(loopback_server: LoopbackServer, tmp_path: Path) -> None:
    # e.g. a size read from a table with pandas, which hands out np.int64
    dest = download_file(loopback_server.url_for(NPZ), tmp_path / "x.npz", NPZ_SHA, np.int64(NPZ_SIZE),
                         progress=False, retries=np.int64(0), timeout=np.float32(10))
    assert dest.read_bytes() == (DATA / NPZ).read_bytes()
