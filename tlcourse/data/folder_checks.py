"""Checks of a folder of one's own photos, before any training: every problem named.

A folder of photos from a phone, a lab or a colleague is untrusted input. torchvision's
``ImageFolder`` reads it as ``root/<class>/<photos>``, but it says nothing about what it
skips (a ``.gif``, a ``notes.txt``), crashes mid-epoch on a truncated JPEG, turns a stray
``.ipynb_checkpoints`` folder into a class, and cannot know that the same photo sits in two
classes or in both the training and the test split (a leak that inflates accuracy).

:func:`check_folder` walks the folder once, opens every image (fully decoded, through the
one safe opener :func:`tlcourse.deploy.images.open_image`, which refuses decompression
bombs), hashes every file (:func:`tlcourse._hashing.sha256_file`) and returns a
:class:`FolderReport`: one :class:`Finding` per problem, each naming its files or classes.
*Errors* make training meaningless or impossible (corrupt images, empty or too small classes,
a single class, one photo under two labels); :meth:`FolderReport.raise_for_errors` refuses
them. *Warnings* (skipped files, imbalance, tiny images, mixed colour modes, copies within a
class) are shown and the lesson goes on.

Nothing in the folder is executed, and the walk never leaves it: symbolic links are named
and never followed, pipes and devices are never opened. :meth:`FolderReport.is_valid_file`
hands ``ImageFolder`` exactly the files that passed, so what trains is what was checked.
"""
from __future__ import annotations

import os
import stat
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .._checks import int_at_least, positive_number
from .._hashing import sha256_file
from ..errors import CourseError

#: The extensions torchvision's ImageFolder loads (``torchvision.datasets.folder.IMG_EXTENSIONS``,
#: copied so that importing this module does not import torchvision; a test keeps them equal).
IMAGEFOLDER_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
#: A class needs a photo in each of train, validation and test.
MIN_PER_CLASS = 3
#: Images with a side shorter than this many pixels are reported as tiny.
TINY_SIDE = 32
#: Largest / smallest class above this ratio is reported as heavy imbalance.
IMBALANCE_RATIO = 3.0
#: How many names a message lists before saying "and N more".
SHOWN = 8

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """One problem: which check found it, how serious it is, what to do, and the files or classes."""

    check: str
    severity: str
    message: str
    items: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"[{self.severity}] {self.check}: {self.message}"


@dataclass
class FolderReport:
    """What :func:`check_folder` found. ``files`` holds, per class, the images that passed."""

    root: Path
    classes: list[str]
    files: dict[str, list[Path]]
    sha256: dict[Path, str]
    sizes: dict[Path, tuple[int, int]]
    modes: dict[Path, str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def counts(self) -> dict[str, int]:
        """Usable images per class, in ImageFolder's class order."""
        return {c: len(self.files[c]) for c in self.classes}

    def is_valid_file(self, path: str) -> bool:
        """``ImageFolder(root, is_valid_file=report.is_valid_file)`` loads exactly the checked files."""
        return Path(path) in self._accepted

    @property
    def _accepted(self) -> set[Path]:
        return {p for files in self.files.values() for p in files}

    def table(self):
        """The findings as a pandas DataFrame (one row per finding, errors first)."""
        import pandas as pd

        rows = [{"severity": f.severity, "check": f.check, "message": f.message} for f in
                sorted(self.findings, key=lambda f: f.severity != ERROR)]
        return pd.DataFrame(rows, columns=["severity", "check", "message"])

    def raise_for_errors(self) -> None:
        """A :class:`CourseError` listing every error at once (fixing one per run is slow)."""
        if self.errors:
            listed = " ".join(f"({i}) {f.check}: {f.message}" for i, f in enumerate(self.errors, 1))
            raise CourseError(
                f"The photo folder {self.root} cannot be trained on; {len(self.errors)} problem(s): {listed} "
                "Fix the folder (nothing in it was changed) and run the check again."
            )

    def __repr__(self) -> str:
        return (f"FolderReport({str(self.root)!r}: {len(self.classes)} classes, {sum(self.counts.values())} usable "
                f"images, {len(self.errors)} error(s), {len(self.warnings)} warning(s))")


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


class _Walk:
    """The files under one class folder, sorted into images to open and things to report."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images: dict[str, list[Path]] = {}
        self.not_images: list[str] = []
        self.links: list[str] = []
        self.special: list[str] = []
        self.loose: list[str] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def class_folder(self, cls: str, folder: Path) -> None:
        found: list[Path] = []
        for here, dirs, names in os.walk(folder, followlinks=False):
            base = Path(here)
            for d in sorted(dirs):
                if (base / d).is_symlink():
                    self.links.append(self.rel(base / d) + "/")
            for name in sorted(names):
                self._file(base / name, found)
        self.images[cls] = sorted(found)

    def _file(self, path: Path, found: list[Path]) -> None:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            self.links.append(self.rel(path))
        elif not stat.S_ISREG(mode):
            self.special.append(self.rel(path))
        elif path.suffix.lower() not in IMAGEFOLDER_EXTENSIONS:
            self.not_images.append(self.rel(path))
        else:
            found.append(path)


def _class_folders(root: Path, walk: _Walk, findings: list[Finding]) -> list[str]:
    """Class names as ImageFolder finds them (every sub-folder, hidden ones too), sorted."""
    classes: list[str] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.is_symlink():
            if entry.is_dir():
                findings.append(Finding(
                    "linked class folder", ERROR,
                    f"{entry.name}/ is a symbolic link; links are never followed (they can point outside the "
                    "folder). Replace it with a real folder of photos.", (entry.name,)))
            else:
                walk.links.append(entry.name)
        elif entry.is_dir(follow_symlinks=False):
            classes.append(entry.name)
            walk.class_folder(entry.name, path)
        elif entry.is_file(follow_symlinks=False):
            walk.loose.append(entry.name)
        else:
            walk.special.append(entry.name)
    return classes


def _open(path: Path) -> tuple[tuple[int, int], str] | str:
    """(size, mode) of a fully decoded image, or why it could not be decoded."""
    from ..deploy.images import open_image  # here: tlcourse.deploy imports tlcourse.data

    try:
        img = open_image(path, mode=None)
    except CourseError as exc:
        return str(exc)
    return img.size, img.mode


def _inspect(paths: list[Path], progress: bool) -> tuple[dict[Path, object], dict[Path, str]]:
    opened: dict[Path, object] = {}
    hashes: dict[Path, str] = {}

    def work(path: Path) -> None:
        hashes[path] = sha256_file(path)
        opened[path] = _open(path)

    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        list(tqdm(pool.map(work, paths), total=len(paths), desc="checking photos", disable=not progress, leave=False))
    return opened, hashes


def _skipped(walk: _Walk, findings: list[Finding]) -> None:
    if walk.not_images:
        findings.append(Finding(
            "not an image", WARNING,
            f"{len(walk.not_images)} file(s) without an image extension ImageFolder reads "
            f"({', '.join(IMAGEFOLDER_EXTENSIONS)}) are skipped: {_names(walk.not_images)}. Convert them "
            "to JPEG/PNG if they are photos, or move them out.", tuple(walk.not_images)))
    if walk.links:
        findings.append(Finding(
            "symbolic link", WARNING,
            f"{len(walk.links)} symbolic link(s) are never followed and not used: {_names(walk.links)}. "
            "Copy the photos themselves into the folder.", tuple(walk.links)))
    if walk.special:
        findings.append(Finding(
            "not a regular file", WARNING,
            f"{len(walk.special)} pipe(s), socket(s) or device(s) are never opened: {_names(walk.special)}.",
            tuple(walk.special)))
    if walk.loose:
        findings.append(Finding(
            "outside the class folders", WARNING,
            f"{len(walk.loose)} file(s) directly in {walk.root.name}/ belong to no class and are ignored: "
            f"{_names(walk.loose)}. Move each into its class's sub-folder.", tuple(walk.loose)))


def _duplicates(report: FolderReport, rel) -> None:
    """Cross-class copies are an error; copies within a class keep only their first file."""
    by_hash: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for cls in report.classes:
        for p in report.files[cls]:
            by_hash[report.sha256[p]].append((cls, p))
    across, within = [], []
    for group in by_hash.values():
        if len({cls for cls, _ in group}) > 1:
            across.append(" = ".join(rel(p) for _, p in group))
        else:
            within += [(group[0][1], p) for _, p in group[1:]]
    if across:
        report.findings.append(Finding(
            "same photo in two classes", ERROR,
            f"{len(across)} photo(s) are byte-for-byte identical under different labels: {_names(across)}. "
            "One photo cannot be two classes: keep it in the right folder only.", tuple(across)))
    if within:
        drop = {p for _, p in within}
        for cls in report.classes:
            report.files[cls] = [p for p in report.files[cls] if p not in drop]
        pairs = [f"{rel(b)} (copy of {rel(a)})" for a, b in within]
        report.findings.append(Finding(
            "copies within a class", WARNING,
            f"{len(within)} file(s) are exact copies of another photo of the same class and are not used, so "
            f"that no copy can land in both the training and the test split: {_names(pairs)}.",
            tuple(rel(b) for _, b in within)))


def _class_sizes(report: FolderReport, min_per_class: int, imbalance_ratio: float) -> None:
    counts = report.counts
    empty = [c for c, n in counts.items() if n == 0]
    small = [f"{c} ({n})" for c, n in counts.items() if 0 < n < min_per_class]
    if empty:
        report.findings.append(Finding(
            "empty class", ERROR,
            f"class folder(s) with no usable image: {_names(empty)}. Add photos or remove the folder "
            "(ImageFolder makes every sub-folder a class, hidden ones such as .ipynb_checkpoints too).",
            tuple(empty)))
    if small:
        report.findings.append(Finding(
            "too few images", ERROR,
            f"class(es) with fewer than {min_per_class} usable images cannot appear in the training, "
            f"validation and test splits: {_names(small)}. Add photos to them.", tuple(small)))
    populated = {c: n for c, n in counts.items() if n}
    if populated and max(populated.values()) > imbalance_ratio * min(populated.values()):
        big, little = max(populated, key=populated.get), min(populated, key=populated.get)
        report.findings.append(Finding(
            "heavy imbalance", WARNING,
            f"{big} has {populated[big]} images, {little} only {populated[little]} (more than "
            f"{imbalance_ratio:g}x): accuracy will mostly reflect the big classes, so read per-class recall.",
            (big, little)))


def _image_properties(report: FolderReport, tiny_side: int, rel) -> None:
    images = [p for files in report.files.values() for p in files]
    tiny = [f"{rel(p)} ({report.sizes[p][0]}x{report.sizes[p][1]})" for p in images if min(report.sizes[p]) < tiny_side]
    if tiny:
        report.findings.append(Finding(
            "tiny images", WARNING,
            f"{len(tiny)} image(s) have a side under {tiny_side} px and will be upscaled (blurred) to the "
            f"network's input size: {_names(tiny)}.", tuple(tiny)))
    modes = Counter(report.modes[p] for p in images)
    if set(modes) - {"RGB"}:
        odd = [f"{rel(p)} ({report.modes[p]})" for p in images if report.modes[p] != "RGB"]
        shown = ", ".join(f"{m}: {n}" for m, n in sorted(modes.items()))
        report.findings.append(Finding(
            "colour modes", WARNING,
            f"not every image is plain RGB ({shown}); each is converted to RGB when loaded (grey copied to "
            "three channels, transparency dropped onto black, CMYK converted), which may not be what you "
            f"expect if one class is all of one kind: {_names(odd)}.", tuple(odd)))


def check_folder(
    root: str | os.PathLike,
    *,
    min_per_class: int = MIN_PER_CLASS,
    tiny_side: int = TINY_SIDE,
    imbalance_ratio: float = IMBALANCE_RATIO,
    progress: bool = True,
) -> FolderReport:
    """Check a photo folder in ImageFolder's layout; every problem becomes a named :class:`Finding`.

    The folder is only read: nothing is moved, deleted or repaired, because a "repair" the
    learner does not see changes their data behind their back.
    """
    min_per_class = int_at_least(min_per_class, "min_per_class", 1)
    tiny_side = int_at_least(tiny_side, "tiny_side", 1)
    imbalance_ratio = positive_number(imbalance_ratio, "imbalance_ratio")
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise CourseError(f"{root} {what}. Give a folder with one sub-folder of photos per class "
                          "(root/cat/1.jpg, root/dog/2.jpg, ...).")
    root = root.resolve()
    findings: list[Finding] = []
    walk = _Walk(root)
    classes = _class_folders(root, walk, findings)
    if len(classes) < 2:
        found = ", ".join(classes) or "none"
        raise CourseError(
            f"{root} has {len(classes)} class folder(s) ({found}); a classifier needs at least two classes. "
            "Put each class's photos in its own sub-folder of this folder (root/<class>/<photo>.jpg).")
    _skipped(walk, findings)
    paths = [p for c in classes for p in walk.images[c]]
    opened, hashes = _inspect(paths, progress)
    corrupt = [str(opened[p]) for p in paths if isinstance(opened[p], str)]
    good = {p for p in paths if not isinstance(opened[p], str)}
    if corrupt:
        findings.append(Finding(
            "unreadable image", ERROR,
            f"{len(corrupt)} image file(s) could not be decoded: {'; '.join(m.rstrip('.') for m in corrupt[:SHOWN])}"
            + (f"; and {len(corrupt) - SHOWN} more" if len(corrupt) > SHOWN else "")
            + ". Delete or replace them; they are never silently dropped.", tuple(corrupt)))
    report = FolderReport(
        root, classes, {c: [p for p in walk.images[c] if p in good] for c in classes},
        {p: hashes[p] for p in good}, {p: opened[p][0] for p in good}, {p: opened[p][1] for p in good}, findings)
    _duplicates(report, walk.rel)
    _class_sizes(report, min_per_class, imbalance_ratio)
    _image_properties(report, tiny_side, walk.rel)
    return report


def shared_files(first: Iterable[str | os.PathLike], second: Iterable[str | os.PathLike]) -> list[tuple[str, str]]:
    """Pairs (a, b), a from ``first`` and b from ``second``, that are byte-for-byte the same file.

    The leak check between a training and a test split (or a test folder from elsewhere):
    an image in both makes the test measure memory instead of generalisation.
    """
    seen: dict[str, str] = {}
    for a in first:
        seen.setdefault(sha256_file(a), str(a))
    return [(seen[h], str(b)) for b in second if (h := sha256_file(b)) in seen]


__all__ = [
    "ERROR",
    "IMAGEFOLDER_EXTENSIONS",
    "IMBALANCE_RATIO",
    "MIN_PER_CLASS",
    "TINY_SIDE",
    "WARNING",
    "Finding",
    "FolderReport",
    "check_folder",
    "shared_files",
]
