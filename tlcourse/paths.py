"""Where the course keeps and looks for its files.

- ``TLCOURSE_DATA``: an extra read-only data directory searched first (CI and the tests point
  it at ``../shared/data``; a classroom can point it at a shared drive).
- ``TLCOURSE_CACHE``: the writable cache (default ``~/.cache/tlcourse``): downloaded
  datasets under ``data/``, decoded image tensors under ``tensors/``, cached features under
  ``features/``.
- Installed packages that ship course files (offline weights, small datasets):
  :func:`installed_package_dir`.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def cache_dir() -> Path:
    """The writable cache root (created on demand)."""
    root = os.environ.get("TLCOURSE_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "tlcourse"
    return path


def data_cache_dir() -> Path:
    return cache_dir() / "data"


def extra_data_dir() -> Path | None:
    """The directory named by ``TLCOURSE_DATA``, if set."""
    value = os.environ.get("TLCOURSE_DATA")
    return Path(value).expanduser() if value else None


def data_search_dirs() -> list[Path]:
    """Dataset roots in resolution order: ``TLCOURSE_DATA`` first, then the user cache."""
    dirs = []
    extra = extra_data_dir()
    if extra is not None:
        dirs.append(extra)
    dirs.append(data_cache_dir())
    return dirs


def subcache(name: str) -> Path:
    """A named subdirectory of the cache, created if missing."""
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def installed_package_dir(import_name: str) -> Path | None:
    """The folder of the installed package ``import_name``, or None if it is not installed.

    Found without importing the package, so a package that only ships data files costs
    nothing to look up.
    """
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])
