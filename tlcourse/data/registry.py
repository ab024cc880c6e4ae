"""The course's datasets: where each comes from, its licence, classes and checksums.

Each :class:`DatasetInfo` knows enough to find the dataset on disk, fetch it for a learner
whose machine has none, and check every file against its recorded sha256. Resolution order
(:func:`locate`): ``TLCOURSE_DATA``, then the user cache, then (in ``tlcourse data fetch``) a
download from the recorded source.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

from ..errors import AssetNotFoundError, unknown_name
from ..paths import data_cache_dir, data_search_dirs, installed_package_dir

_PLANTVILLAGE_REPO = "https://raw.githubusercontent.com/harshita34/plant-disease-classification/0ba5823aa8f4d1236d726f748547242baa400cb6/"
_PNEUMONIA_URL = "https://raw.githubusercontent.com/aksufatih/snn-medmnist/5df79ab2ac7bf898a8c7bf39830053619defa2f7/pneumoniamnist.npz"
_HYMENOPTERA_ZIP = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative to the data root (or the package's data folder for "package" sets)
    sha256: str
    size: int
    source: str = ""  # path at the source, where it differs


def display_name(folder: str) -> str:
    """A readable class name from PlantVillage's unevenly spelled folders.

    ``Tomato__Tomato_YellowLeaf__Curl_Virus`` -> ``Tomato: yellow leaf curl virus``;
    ``Pepper__bell___healthy`` -> ``Pepper (bell): healthy``.
    """
    crop, _, condition = folder.partition("_")
    condition = condition.lstrip("_")
    if crop == "Pepper" and condition.startswith("bell"):
        crop, condition = "Pepper (bell)", condition[len("bell"):].lstrip("_")
    if condition.startswith(crop + "_"):
        condition = condition[len(crop):].lstrip("_")
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", condition.replace("_", " ")).split()
    text = " ".join(words).lower()
    text = text.replace("spider mites two spotted spider mite", "spider mites (two-spotted)")
    return f"{crop}: {text}"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    kind: str  # "folder" (class folders of images), "npz" (arrays), "package" (a PyPI package)
    root: str  # folder or file name inside a data directory
    licence: str
    citation: str
    source: str  # where the files come from, for people
    domain: str  # similarity to ImageNet: "similar" or "different"
    class_folders: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    manifest_name: str = ""
    sha256: str = ""  # for single-file datasets
    size: int = 0
    url: str = ""  # single-file or archive URL
    package: str = ""  # for kind == "package"
    exclude: tuple[str, ...] = field(default=())  # manifest files that are not samples
    notes: str = ""

    @cached_property
    def manifest(self) -> tuple[ManifestEntry, ...]:
        if self.kind == "npz":
            return (ManifestEntry(self.root, self.sha256, self.size),)
        text = resources.files("tlcourse.data").joinpath("manifests").joinpath(self.manifest_name).read_text()
        rows = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            rows.append(ManifestEntry(parts[0], parts[1], int(parts[2]), parts[3] if len(parts) > 3 else ""))
        return tuple(rows)

    def source_url(self, entry: ManifestEntry) -> str:
        """Where :func:`tlcourse.data.commands.fetch` downloads ``entry`` from."""
        if self.name == "plantvillage":
            return _PLANTVILLAGE_REPO + entry.source.replace(" ", "%20")
        return self.url

    def sample_entries(self) -> list[ManifestEntry]:
        return [e for e in self.manifest if e.path not in self.exclude and not e.path.endswith(".csv")]


PLANTVILLAGE_FOLDERS = (
    "Pepper__bell___Bacterial_spot",
    "Pepper__bell___healthy",
    "Potato___Early_blight",
    "Potato___Late_blight",
    "Potato___healthy",
    "Tomato_Bacterial_spot",
    "Tomato_Early_blight",
    "Tomato_Late_blight",
    "Tomato_Leaf_Mold",
    "Tomato_Septoria_leaf_spot",
    "Tomato_Spider_mites_Two_spotted_spider_mite",
    "Tomato__Target_Spot",
    "Tomato__Tomato_YellowLeaf__Curl_Virus",
    "Tomato__Tomato_mosaic_virus",
    "Tomato_healthy",
)

DATASETS: dict[str, DatasetInfo] = {
    "plantvillage": DatasetInfo(
        name="plantvillage",
        title="PlantVillage leaves (15 classes x 150 photos)",
        kind="folder",
        root="plantvillage",
        licence="CC BY-SA 3.0",
        citation="Hughes & Salathé 2015, arXiv:1511.08060; Mohanty, Hughes & Salathé 2016, "
        "Front. Plant Sci. 7:1419",
        source="github.com/harshita34/plant-disease-classification @ 0ba5823 (PlantVillage/), "
        "a seeded random 150 per class",
        domain="similar",
        class_folders=PLANTVILLAGE_FOLDERS,
        class_names=tuple(display_name(f) for f in PLANTVILLAGE_FOLDERS),
        manifest_name="plantvillage.tsv",
        notes="Lab photos of single leaves on a plain background; some near-duplicates.",
    ),
    "hymenoptera": DatasetInfo(
        name="hymenoptera",
        title="Ants vs bees (the PyTorch transfer-learning tutorial set)",
        kind="folder",
        root="hymenoptera_data",
        licence="photo owners' copyright (ImageNet/Flickr); teaching use",
        citation="PyTorch transfer-learning tutorial (Chilamkurthy); images from ImageNet",
        source=_HYMENOPTERA_ZIP,
        domain="similar",
        class_folders=("ants", "bees"),
        class_names=("ant", "bee"),
        manifest_name="hymenoptera.tsv",
        url=_HYMENOPTERA_ZIP,
        exclude=("hymenoptera_data/train/ants/imageNotFound.gif",),
        notes="Official train/val split kept. imageNotFound.gif (a placeholder in the official "
        "zip, not an ant) is excluded.",
    ),
    "pneumoniamnist": DatasetInfo(
        name="pneumoniamnist",
        title="PneumoniaMNIST chest X-rays (28x28 greyscale, balanced subset)",
        kind="npz",
        root="pneumoniamnist/pneumoniamnist.npz",
        licence="CC BY 4.0",
        citation="Yang et al., MedMNIST v2, Scientific Data 2023; images from Kermany et al. 2018",
        source="github.com/aksufatih/snn-medmnist @ 5df79ab (pneumoniamnist.npz)",
        domain="different",
        class_names=("normal", "pneumonia"),
        sha256="f36c2b3e34de9d60c5c734118bc6daff281eaf76b67a57d26ad958da948274b0",
        size=2486856,
        url=_PNEUMONIA_URL,
        notes="Class-balanced undersample keeping the official train/val/test membership.",
    ),
    "elpv": DatasetInfo(
        name="elpv",
        title="ELPV solar-cell electroluminescence images (300x300 greyscale)",
        kind="package",
        root="elpv_dataset",
        licence="CC BY-NC-SA 4.0 (images); Apache-2.0 (loader)",
        citation="Buerhop-Lutz et al. 2018 (EU PVSEC); Deitsch et al. 2019 (Solar Energy)",
        source="PyPI package elpv-dataset 1.0.0.post1",
        domain="different",
        class_names=("functional", "defective"),
        manifest_name="elpv.tsv",
        package="elpv_dataset",
        notes="Labels are defect probabilities 0, 1/3, 2/3, 1; the course calls >= 0.5 "
        "'defective'. Keeps the cell type (mono/poly) per image.",
    ),
}


def get_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name]


def _present(info: DatasetInfo, base: Path) -> bool:
    """Cheap presence check: every manifest file exists with the recorded size."""
    for entry in info.manifest:
        path = base / entry.path
        try:
            if path.stat().st_size != entry.size:
                return False
        except OSError:
            return False
    return True


def package_data_dir(info: DatasetInfo) -> Path | None:
    package = installed_package_dir(info.package)
    return None if package is None else package / "data"


def locate(name: str) -> Path:
    """The directory the dataset's manifest paths are relative to.

    A folder of your own photos (any existing folder that is not a course dataset's name) is
    its own location. Raises :class:`AssetNotFoundError` saying which dataset, where we
    looked, and the command that fetches it.
    """
    if name not in DATASETS and Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve()
    info = get_info(name)
    if info.kind == "package":
        base = package_data_dir(info)
        if base is not None and _present(info, base):
            return base
        # A classroom pack (`tlcourse unpack`) installs a copy as <data dir>/<root>/, for a
        # machine whose package is missing or damaged and that cannot reach PyPI.
        copies = [d / info.root for d in data_search_dirs()]
        for copy in copies:
            if _present(info, copy):
                return copy
        raise AssetNotFoundError(
            f"Dataset {name!r} comes from the PyPI package elpv-dataset, which is "
            f"{'damaged' if base else 'not installed'}, and no copy was found in "
            f"{', '.join(str(c) for c in copies)}. Install it with "
            "`pip install --force-reinstall elpv-dataset` (or `tlcourse unpack FILE` from a "
            "classroom pack)."
        )
    searched = data_search_dirs()
    for base in searched:
        if _present(info, base):
            return base
    where = ", ".join(str(d) for d in searched)
    raise AssetNotFoundError(
        f"Dataset {name!r} ({info.title}) was not found. Looked in: {where} (set "
        f"TLCOURSE_DATA to a folder holding {info.root}/, or fill the cache). Fetch it with "
        f"`tlcourse data fetch {name}` (needs internet; {len(info.manifest)} files from "
        f"{info.source}), or install a classroom pack offline with `tlcourse unpack FILE`."
    )


def find_copy(name: str) -> Path | None:
    """The base of the first copy of dataset ``name`` that exists at all, complete or not.

    :func:`locate` wants every file present; ``tlcourse data verify`` and ``fetch`` need the
    damaged copy too, to name its missing files and download exactly those again.
    """
    info = get_info(name)
    if info.kind == "package":
        base = package_data_dir(info)
        bases = ([base] if base is not None else []) + [d / info.root for d in data_search_dirs()]
        return next((b for b in bases if b.is_dir()), None)
    top = info.root.split("/")[0]
    return next((d for d in data_search_dirs() if (d / top).exists()), None)


def is_available(name: str) -> bool:
    try:
        locate(name)
        return True
    except AssetNotFoundError:
        return False


def cache_target(name: str) -> Path:
    """Where ``fetch`` puts a dataset: the user cache (never ``TLCOURSE_DATA``)."""
    return data_cache_dir()
