"""``tlcourse data list | fetch NAME | verify NAME``."""
from __future__ import annotations

import argparse


from pathlib import Path

from tqdm.auto import tqdm

from .._hashing import sha256_file
from ..errors import AssetNotFoundError, ChecksumError, CourseError
from ..paths import data_cache_dir
from .registry import DATASETS, DatasetInfo, get_info, locate


def verify(name: str, progress: bool = True) -> tuple[Path, list[str]]:
    """Check every file of dataset ``name`` against its sha256; return (where, problems)."""
    info = get_info(name)
    base = locate(name)
    problems = []
    for entry in tqdm(info.manifest, desc=f"verifying {name}", disable=not progress, leave=False):
        path = base / entry.path
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif sha256_file(path) != entry.sha256:
            problems.append(f"sha256 mismatch: {path}")
    return base, problems


def _fetch_zip(info: DatasetInfo, target: Path, progress: bool) -> None:
    from .download import download_file, extract_zip

    downloads = target / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = download_file(info.url, downloads / Path(info.url).name, None, desc=info.name, progress=progress)
    extract_zip(archive, target / info.root, members_prefix=info.root + "/")
    archive.unlink(missing_ok=True)


def fetch(name: str, progress: bool = True) -> Path:
    """Download dataset ``name`` into the user cache, verifying every file's sha256.

    With ``TLCOURSE_MIRROR`` set, every file comes from the mirror (laid out like the course's
    data folder); otherwise from the dataset's recorded source.
    """
    from .download import MIRROR_ENV, download_file, download_many, mirror_url
    import os

    info = get_info(name)
    try:
        where = locate(name)
        print(f"{name}: already available in {where}")
        return where
    except AssetNotFoundError:
        pass
    if info.kind == "package":
        raise CourseError(
            f"Dataset {name!r} is installed from PyPI, not downloaded by tlcourse: "
            "`pip install elpv-dataset`."
        )
    target = data_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    mirrored = bool(os.environ.get(MIRROR_ENV))
    if info.kind == "npz":
        entry = info.manifest[0]
        download_file(mirror_url(info.url, entry.path), target / entry.path, entry.sha256, entry.size, desc=name, progress=progress)
    elif info.name == "hymenoptera" and not mirrored:
        _fetch_zip(info, target, progress)
    else:
        items = [(mirror_url(info.source_url(e), e.path), target / e.path, e.sha256, e.size) for e in info.manifest]
        download_many(items, desc=name, progress=progress)
    base, problems = verify(name, progress=progress)
    if problems:
        raise ChecksumError(
            f"{len(problems)} file(s) of {name} failed verification after download ("
            + "; ".join(problems[:5]) + "). Run `tlcourse data fetch " + name + "` again."
        )
    return base


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
        print(f"{args.name}: {len(problems)} of {len(info.manifest)} files failed in {base}. "
              f"Re-fetch with `tlcourse data fetch {args.name}` into the cache (or fix {base}).")
        return 1
    print(f"{args.name}: all {len(info.manifest)} files match their sha256 ({base}).")
    return 0


