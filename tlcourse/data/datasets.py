"""Datasets as decoded image tensors, loaded once and cached.

Decoding a JPEG and resizing it costs about as much as a small network's forward pass on a
CPU (~200 images/s here), so the course decodes each image once, at the size a lesson uses,
and keeps the result as a uint8 tensor, in memory and on disk
(``TLCOURSE_CACHE/tensors``). Training then reads tensors: augmentation runs on tensors and
normalisation happens last, with the backbone's own statistics.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .. import atomic
from .._checks import int_at_least, int_in_range
from ..errors import CourseError, InvalidParameterError
from ..paths import subcache
from ..safeload import load_cache
from .registry import DatasetInfo, get_info, locate

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: torchvision's ImageNet recipes resize to 256 and crop 224; the cache keeps that ratio.
RESIZE_RATIO = 256 / 224
_CACHE_VERSION = 1


class ImageTensorDataset(Dataset):
    """Images as one uint8 tensor ``(N, 3, H, W)`` with integer labels.

    ``dataset[i]`` returns ``(transform(image), label)``; with no transform the raw uint8 image
    (for plotting). :meth:`with_transform` and :meth:`subset` return views that share the
    image tensor, so splits and augmentation variants cost no memory.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[str],
        *,
        paths: Sequence[str] | None = None,
        splits: Sequence[str] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        name: str = "",
        extras: dict[str, np.ndarray] | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise CourseError(f"images must be a uint8 tensor (N, 3, H, W), got {images.dtype} {tuple(images.shape)}.")
        if len(images) != len(labels):
            raise CourseError(f"{len(images)} images but {len(labels)} labels.")
        self.images = images
        self.labels = labels.long()
        self.classes = list(classes)
        self.paths = list(paths) if paths is not None else [f"{name}[{i}]" for i in range(len(images))]
        self.splits = np.asarray(splits) if splits is not None else None
        self.transform = transform
        self.name = name
        self.extras = extras or {}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels.tolist())
        return {c: counts.get(i, 0) for i, c in enumerate(self.classes)}

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> "ImageTensorDataset":
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return ImageTensorDataset(
            self.images[idx],
            self.labels[idx],
            self.classes,
            paths=[self.paths[i] for i in idx.tolist()],
            splits=self.splits[idx.numpy()] if self.splits is not None else None,
            transform=self.transform,
            name=self.name,
            extras={k: v[idx.numpy()] for k, v in self.extras.items()},
        )

    def with_transform(self, transform: Callable[[torch.Tensor], torch.Tensor] | None) -> "ImageTensorDataset":
        view = ImageTensorDataset.__new__(ImageTensorDataset)
        view.__dict__.update(self.__dict__)
        view.transform = transform
        return view

    def fingerprint(self) -> str:
        """A short hash of the images, labels and order: a cache key for features."""
        digest = hashlib.sha1()
        digest.update(str((self.name, tuple(self.images.shape), self.classes)).encode())
        digest.update(self.labels.numpy().tobytes())
        digest.update(self.images.numpy().tobytes())
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"ImageTensorDataset({self.name!r}, {len(self)} images of {self.image_size}px, "
            f"{self.num_classes} classes, transform={'yes' if self.transform else 'none'})"
        )


def _decode(path: Path, size: int, resize: int) -> torch.Tensor:
    """Decode one image file, resize its shorter side to ``resize``, centre-crop ``size``."""
    with Image.open(path) as img:
        img.draft("RGB", (resize, resize))  # JPEG: decode at reduced scale, much faster
        img = img.convert("RGB")
        w, h = img.size
        scale = resize / min(w, h)
        img = img.resize((max(resize, round(w * scale)), max(resize, round(h * scale))), Image.BILINEAR, reducing_gap=None)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def decode_images(paths: Sequence[Path], size: int, *, desc: str = "decoding images", progress: bool = True) -> torch.Tensor:
    """Decode many image files in parallel (Pillow releases the GIL) into one uint8 tensor.

    A file that cannot be decoded is an error naming every such file: a corrupt image is
    never silently dropped, because dropping it would change a split without anyone knowing.
    """
    resize = int(round(size * RESIZE_RATIO))
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    bad: list[str] = []

    def work(i: int) -> None:
        try:
            out[i] = _decode(Path(paths[i]), size, resize)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            bad.append(f"{paths[i]} ({exc.__class__.__name__}: {exc})")

    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        list(tqdm(pool.map(work, range(len(paths))), total=len(paths), desc=desc, disable=not progress, leave=False))
    if bad:
        raise CourseError(
            f"{len(bad)} image file(s) could not be decoded: " + "; ".join(sorted(bad)[:10])
            + ". Delete or replace them (re-fetch with `tlcourse data fetch NAME` for a course "
            "dataset), then load again."
        )
    return out


def _cached(key: str, build: Callable[[], dict]) -> dict:
    """The decoded dataset from the cache, or built and cached.

    The cache is read weights-only (tensors, strings, numbers, lists, dicts), so it is written
    in that form too: numpy extras are stored as tensors or lists of strings. A cache file that
    does not load that way is discarded with a warning and rebuilt, never unpickled.
    """
    path = subcache("tensors") / f"{key}.pt"
    saved = load_cache(path, ("images", "labels", "paths"))
    if saved is not None:
        if saved.get("extras") is not None:
            saved["extras"] = {k: v.numpy() if isinstance(v, torch.Tensor) else np.array(v)
                               for k, v in saved["extras"].items()}
        return saved
    payload = build()
    plain = dict(payload)
    if payload.get("extras") is not None:
        plain["extras"] = {k: torch.from_numpy(v) if v.dtype.kind in "biuf" else v.tolist()
                           for k, v in payload["extras"].items()}
    atomic.torch_save(plain, path)
    return payload


def _from_folder_manifest(info: DatasetInfo, base: Path, size: int, progress: bool) -> dict:
    entries = info.sample_entries()
    folder_index = {f: i for i, f in enumerate(info.class_folders)}
    paths, labels, splits = [], [], []
    for e in entries:
        parts = Path(e.path).parts
        cls = parts[-2]
        paths.append(base / e.path)
        labels.append(folder_index[cls])
        splits.append(parts[-3] if info.name == "hymenoptera" else "")
    images = decode_images(paths, size, desc=f"decoding {info.name} at {size}px", progress=progress)
    return {
        "images": images,
        "labels": torch.tensor(labels),
        "paths": [e.path for e in entries],
        "splits": splits if any(splits) else None,
    }


def _resize_grey(arr: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W) uint8 greyscale -> (N, 3, size, size) uint8, bilinear, antialiased."""
    t = torch.from_numpy(arr).float().unsqueeze(1)
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def _from_npz(info: DatasetInfo, base: Path, size: int, progress: bool) -> dict:
    data = np.load(base / info.root)
    images, labels, splits = [], [], []
    for split in ("train", "val", "test"):
        x = data[f"{split}_images"]
        images.append(_resize_grey(x, size))
        labels.append(torch.from_numpy(data[f"{split}_labels"].reshape(-1).astype(np.int64)))
        splits += [split] * len(x)
    n = sum(len(l) for l in labels)
    return {
        "images": torch.cat(images),
        "labels": torch.cat(labels),
        "paths": [f"{info.root}#{s}[{i}]" for i, s in enumerate(splits)],
        "splits": splits,
        "count": n,
    }


def _from_elpv(info: DatasetInfo, base: Path, size: int, progress: bool) -> dict:
    rows = np.genfromtxt(base / "labels.csv", dtype=["|S19", "<f8", "|S4"], names=["path", "probability", "type"])
    rel = [p.decode() for p in rows["path"]]
    probs = rows["probability"].astype(np.float32)
    grey = []
    for r in tqdm(rel, desc=f"decoding elpv at {size}px", disable=not progress, leave=False):
        with Image.open(base / r) as img:
            grey.append(np.asarray(img.convert("L").resize((size, size), Image.BILINEAR)))
    images = torch.from_numpy(np.stack(grey)).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return {
        "images": images,
        "labels": torch.from_numpy((probs >= 0.5).astype(np.int64)),
        "paths": rel,
        "splits": None,
        "extras": {"defect_probability": probs, "cell_type": np.array([t.decode() for t in rows["type"]])},
    }


def load_dataset(
    name: str,
    image_size: int = 128,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
) -> ImageTensorDataset:
    """Load a course dataset, or a folder of your own photos, as decoded uint8 tensors at ``image_size`` pixels.

    ``name`` is a course dataset (``tlcourse data list``) or the path of a folder with one
    sub-folder of photos per class, which :func:`load_image_folder` checks and loads: so every
    lesson parameter that names a dataset also takes a folder.

    The first call decodes every file (with a progress bar) and caches the tensor; later calls,
    in any notebook, read the cache in well under a second. Pass the model's eval transform
    (``tlcourse.data.eval_transform(preprocessing)``) as ``transform`` or set it later with
    :meth:`ImageTensorDataset.with_transform`.
    """
    if is_folder_dataset(name):
        return load_image_folder(name, image_size, transform=transform, progress=progress)
    info = get_info(name)
    image_size = int_in_range(image_size, "image_size", 16, 1024)
    base = locate(name)
    manifest_hash = hashlib.sha1("".join(e.sha256 for e in info.manifest).encode()).hexdigest()[:10]
    key = f"{name}-{image_size}px-v{_CACHE_VERSION}-{manifest_hash}"
    builder = {"folder": _from_folder_manifest, "npz": _from_npz, "package": _from_elpv}[info.kind]
    payload = _cached(key, lambda: builder(info, base, image_size, progress))
    return ImageTensorDataset(
        payload["images"],
        payload["labels"],
        info.class_names,
        paths=payload["paths"],
        splits=payload.get("splits"),
        transform=transform,
        name=name,
        extras=payload.get("extras"),
    )


def is_folder_dataset(name: str | os.PathLike) -> bool:
    """True when ``name`` is not a course dataset but an existing folder (your own photos)."""
    from .registry import DATASETS

    return str(name) not in DATASETS and Path(name).expanduser().is_dir()


def load_image_folder(
    root: str | os.PathLike,
    image_size: int = 128,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
) -> ImageTensorDataset:
    """Load your own data: ``root/<class name>/<image files>`` (torchvision's ImageFolder layout).

    The folder is checked first (:func:`tlcourse.data.folder_checks.check_folder`), because a
    silently skipped file changes results: an undecodable image, an empty or too small class,
    a single class or one photo under two labels is an error that names it; skipped files,
    imbalance, tiny images and mixed colour modes are warnings that name them. Only the images
    that passed are decoded, and the decoded tensor is cached under the files' sha256s, so a
    second lesson on the same folder decodes nothing.
    """
    import warnings

    from .folder_checks import check_folder

    image_size = int_in_range(image_size, "image_size", 16, 1024)
    report = check_folder(root, progress=progress)
    report.raise_for_errors()
    for finding in report.warnings:
        warnings.warn(f"{report.root}: {finding}", UserWarning, stacklevel=2)
    paths = [p for c in report.classes for p in report.files[c]]
    labels = [i for i, c in enumerate(report.classes) for _ in report.files[c]]
    digest = hashlib.sha1()
    for i, p in zip(labels, paths):
        digest.update(f"{report.classes[i]}|{p.relative_to(report.root).as_posix()}|{report.sha256[p]}\n".encode())
    key = f"folder-{report.root.name[:40]}-{digest.hexdigest()[:16]}-{image_size}px-v{_CACHE_VERSION}"

    def build() -> dict:
        images = decode_images(paths, image_size, desc=f"decoding {report.root.name}", progress=progress)
        return {"images": images, "labels": torch.tensor(labels), "paths": [str(p) for p in paths]}

    payload = _cached("".join(c if c.isalnum() or c in "-_" else "_" for c in key), build)
    return ImageTensorDataset(
        payload["images"],
        payload["labels"],
        report.classes,
        paths=[str(p) for p in paths],
        transform=transform,
        name=str(report.root),
    )


@dataclass
class Splits:
    """Train / validation / test views of one dataset."""

    train: ImageTensorDataset
    val: ImageTensorDataset
    test: ImageTensorDataset

    def with_transforms(self, train: Callable | None, eval: Callable | None) -> "Splits":
        """Augment the training view, keep validation and test deterministic."""
        return Splits(self.train.with_transform(train), self.val.with_transform(eval), self.test.with_transform(eval))

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def stratified_indices(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices class by class, so every part has each class in proportion."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        bounds = np.round(np.cumsum(fractions) / np.sum(fractions) * len(idx)).astype(int)
        start = 0
        for k, stop in enumerate(bounds):
            parts[k] += idx[start:stop].tolist()
            start = stop
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def split_dataset(
    data: ImageTensorDataset, *, val: float = 0.15, test: float = 0.15, seed: int = 0, official: bool = True
) -> Splits:
    """Deterministic stratified train/val/test split from ``seed``.

    Datasets with an official split keep it when ``official`` (PneumoniaMNIST's train/val/test;
    ants/bees' train/val, whose val half-and-half becomes val and test).
    """
    for frac, label in ((val, "val"), (test, "test")):
        if not 0 < frac < 1:
            raise InvalidParameterError(f"{label} fraction must be between 0 and 1, got {frac!r}.")
    if val + test >= 1:
        raise InvalidParameterError(f"val + test = {val + test} leaves nothing to train on; use smaller fractions.")
    labels = data.labels.numpy()
    if official and data.splits is not None:
        s = data.splits
        train_idx = np.flatnonzero(s == "train")
        if (s == "test").any():
            val_idx, test_idx = np.flatnonzero(s == "val"), np.flatnonzero(s == "test")
        else:
            held = np.flatnonzero(s == "val")
            a, b = stratified_indices(labels[held], [0.5, 0.5], seed)
            val_idx, test_idx = held[a], held[b]
        return Splits(data.subset(train_idx), data.subset(val_idx), data.subset(test_idx))
    tr, va, te = stratified_indices(labels, [1 - val - test, val, test], seed)
    return Splits(data.subset(tr), data.subset(va), data.subset(te))


def take_per_class(data: ImageTensorDataset, n_per_class: int, *, seed: int = 0) -> ImageTensorDataset:
    """A seeded subset with ``n_per_class`` images of every class (small-data experiments)."""
    n_per_class = int_at_least(n_per_class, "n_per_class", 1)
    counts = data.class_counts()
    short = {c: k for c, k in counts.items() if k < n_per_class}
    if short:
        smallest = min(counts.values())
        raise InvalidParameterError(
            f"n_per_class={n_per_class} is more than some classes have in this split "
            f"({', '.join(f'{c}: {k}' for c, k in list(short.items())[:4])}). Use at most {smallest}."
        )
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    chosen = [rng.choice(np.flatnonzero(labels == c), n_per_class, replace=False) for c in range(data.num_classes)]
    return data.subset(np.sort(np.concatenate(chosen)))


def limit_images(data: ImageTensorDataset, max_images: int | None, *, seed: int = 0) -> ImageTensorDataset:
    """At most ``max_images``, stratified (keeps every class present) - for quick runs."""
    if max_images is None or max_images >= len(data):
        return data
    frac = max_images / len(data)
    keep, _ = stratified_indices(data.labels.numpy(), [frac, 1 - frac], seed)
    return data.subset(keep)
