"""Loading an export back, refusing every file that is not one, and predicting with it.

Model files are passed around, so :func:`load_exported` treats each as hostile: the metadata
is read first (:func:`read_metadata`, cheap, and specific about each kind of wrong file: a
``torch.save`` checkpoint, TorchScript, random bytes, a missing path), then every member of the
archive is inspected (:mod:`tlcourse.deploy.archive_check`) and PyTorch reads only the checked
bytes. What comes back is an :class:`ExportedModel`: the network with its class names,
preprocessing and provenance, which predicts from PIL images or image files.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import int_in_range
from ..errors import CourseError, InvalidParameterError
from ..models.preprocessing import Preprocessing
from .archive_check import check_member_names, checked_export_archive, export_root
from .images import ImageLike, as_image, as_list
from .metadata import FORMAT, FORMAT_VERSION, METADATA_FILE, check_class_names, preprocessing_from_dict

#: Images per forward pass when predicting: bounds memory for folders of any size.
PREDICT_BATCH = 32


def check_top_k(top_k: Any, num_classes: int) -> int:
    """``top_k`` as given, if it is a whole number of classes this model has."""
    return int_in_range(top_k, "top_k", 1, num_classes, hint=f"This model has {num_classes} classes.")


def _not_an_export(path: Path, what: str) -> CourseError:
    return CourseError(
        f"{path} is not a tlcourse model export: {what} Give the file written by "
        "tlcourse.deploy.export_model(model, path, ...) (lesson 07 writes runs/plant_disease_model.pt2 "
        "next to the notebook), or export your model with it."
    )


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The class names, preprocessing and provenance of an export, without loading the network.

    Cheap (reads one small member of the archive), so ``tlcourse predict`` rejects a wrong
    file at once, and so the checks here give a specific message for each kind of wrong file.
    An archive with members that ``export_model`` never writes is refused here already
    (:class:`~tlcourse.errors.UnsafeFileError`): nothing in the file is unpickled or run.
    """
    return _read_metadata(path)[0]


def _read_metadata(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """read_metadata, plus the name of the archive member it was read from."""
    path = Path(path)
    if not path.exists():
        raise CourseError(
            f"No model file at {path}. Check the path (relative paths start from "
            f"{Path.cwd()}), or export a model first with tlcourse.deploy.export_model."
        )
    if path.is_dir():
        raise CourseError(f"{path} is a folder, not a model file. Give the exported file inside it.")
    if not zipfile.is_zipfile(path):
        raise _not_an_export(
            path, "it is not a model archive at all (random bytes, a truncated download, or another kind of "
            "file; ONNX files are read when their name ends in .onnx)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            wanted = [m for m in members if m.endswith(f"extra/{METADATA_FILE}")]
            if not wanted:
                if any(m.endswith("archive_format") for m in members):
                    what = ("it is a torch.export program, but not one written by tlcourse, so it carries "
                            "no class names or preprocessing.")
                elif any("/code/" in m or m.startswith("code/") for m in members):
                    what = "it is a TorchScript file, which has no class names or preprocessing."
                elif any(m.endswith("data.pkl") for m in members):
                    what = ("it was written by torch.save (a state_dict or checkpoint): weights only, "
                            "without the network's code, class names or preprocessing. Load it into the "
                            "same architecture with model.load_state_dict(torch.load(path)), then export.")
                else:
                    what = "it is a zip archive without a model in it."
                raise _not_an_export(path, what)
            check_member_names(path, members, export_root(wanted[0]))
            raw = archive.read(wanted[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise _not_an_export(path, f"the archive could not be read ({exc}); the file is damaged.") from exc
    return parse_metadata(raw, path), wanted[0]


def parse_metadata(raw: bytes | str, path: Path) -> dict[str, Any]:
    """The recorded ``tlcourse.json`` (from a ``.pt2`` member or an ONNX file's metadata), checked."""
    try:
        metadata = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_an_export(path, f"its {METADATA_FILE} is not valid JSON ({exc}); the file is damaged.") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise _not_an_export(path, f"its {METADATA_FILE} does not say format={FORMAT!r}.")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CourseError(
            f"{path} was written by a newer tlcourse (export format {version!r}; this one reads up to "
            f"{FORMAT_VERSION}). Upgrade tlcourse: pip install -U tlcourse."
        )
    return metadata


def check_network_matches(module: nn.Module, names: list[str], pre: Preprocessing, path: Path) -> None:
    """One forward pass on a blank image: the network must take the recorded size and give one
    score per recorded class name. Otherwise predictions would be mislabelled (or crash), so
    an edited or mixed-up file is refused at load time rather than trusted."""
    size = pre.crop_size
    try:
        with torch.inference_mode():
            out = module(torch.zeros(1, 3, size, size))
    except Exception as exc:  # torch's guard errors vary by version
        raise CourseError(
            f"{path}: the network does not accept the {size}x{size} px images its recorded preprocessing "
            f"makes ({exc.__class__.__name__}). The metadata was edited or belongs to another model; "
            "export the model again."
        ) from exc
    width = out.shape[1] if isinstance(out, torch.Tensor) and out.ndim == 2 else None
    if width != len(names):
        shown = ", ".join(names) if len(names) <= 6 else ", ".join(names[:5]) + f", ... ({len(names)} names)"
        raise CourseError(
            f"{path} names {len(names)} classes ({shown}) but its network outputs "
            f"{width if width is not None else 'no'} scores per image: the predictions would be mislabelled. "
            "The metadata was edited or belongs to another model; export the model again."
        )


def recorded_class_names(metadata: Mapping[str, Any], path: Path) -> list[str]:
    try:
        return check_class_names(metadata.get("class_names"))
    except InvalidParameterError as exc:
        raise _not_an_export(path, f"its class names are invalid ({exc}).") from exc


@dataclass
class ExportedModel:
    """A loaded export: the network, its class names, preprocessing and provenance.

    ``model`` is a plain ``nn.Module`` taking normalised float images ``(N, 3, S, S)`` with
    ``S = preprocessing.crop_size`` and returning class scores (logits). :meth:`predict` does
    the whole job from image files or PIL images.
    """

    path: Path
    model: nn.Module
    class_names: list[str]
    preprocessing: Preprocessing
    provenance: dict[str, Any]
    file_size: int
    program: Any = field(repr=False, default=None)

    def preprocess(self, images: ImageLike | Iterable[ImageLike]) -> torch.Tensor:
        """Images -> the model's input batch, with the preprocessing recorded at export.

        Each image is resized (shorter side to ``resize_size``), centre-cropped to
        ``crop_size`` and normalised: torchvision's ``weights.transforms()`` recipe. Paths are
        opened as ``tlcourse predict`` opens them (:func:`tlcourse.deploy.images.open_image`
        with ``resize_size``: a huge JPEG is decoded at a reduced scale, so the two give the
        same answers and a scan does not take hundreds of MB); an unreadable file raises a
        :class:`CourseError` naming it.
        """
        transform = self.preprocessing.transforms()
        resize = self.preprocessing.resize_size
        batch = [transform(as_image(item, resize)) for item in as_list(images)]
        if not batch:
            raise InvalidParameterError("No images were given to predict.")
        return torch.stack(batch)

    @torch.inference_mode()
    def predict_proba(self, images: ImageLike | Iterable[ImageLike]) -> torch.Tensor:
        """Class probabilities ``(N, classes)`` (softmax of the logits), in batches."""
        items = as_list(images)
        if not items:
            raise InvalidParameterError("No images were given to predict.")
        out = []
        for start in range(0, len(items), PREDICT_BATCH):
            x = self.preprocess(items[start : start + PREDICT_BATCH])
            out.append(self.model(x).float().softmax(1))
        return torch.cat(out)

    def predict(self, images: ImageLike | Iterable[ImageLike], top_k: int = 1) -> list[list[tuple[str, float]]]:
        """For each image, its ``top_k`` (class name, probability) pairs, most probable first.

        ``images``: a list of PIL images or image paths (a single one is treated as a list of one).
        """
        k = check_top_k(top_k, len(self.class_names))
        return self._top(self.predict_proba(images), k)

    def _top(self, probs: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
        values, indices = probs.topk(k, dim=1)
        return [
            [(self.class_names[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist())]
            for vs, ix in zip(values, indices)
        ]

    def __repr__(self) -> str:
        p = self.provenance
        facts = [f"{len(self.class_names)} classes", f"{self.preprocessing.crop_size} px"]
        for key in ("backbone", "dataset"):
            if key in p:
                facts.append(f"{key} {p[key]}")
        for key in ("test_accuracy", "accuracy"):
            if isinstance(p.get(key), (int, float)):
                facts.append(f"{key} {p[key]:.1%}")
                break
        facts.append(f"{self.file_size / 1e6:.1f} MB")
        return f"ExportedModel({self.path}: {', '.join(facts)})"


def load_exported(path: str | os.PathLike[str]) -> ExportedModel:
    """Load a file written by :func:`export_model` (on the CPU, in eval mode).

    Needs only PyTorch to rebuild the network: the graph and weights are in the file. Anything
    else (a ``torch.save`` checkpoint, TorchScript, random bytes, a missing file) is refused
    with a :class:`CourseError` that names the file and says what to do.

    Model files are passed around, so the file is treated as hostile: ``torch.export.load``
    would unpickle pickled weights, constants and example inputs and evaluate code in the
    graph. Every member is checked first (:func:`tlcourse.deploy.archive_check.checked_export_archive`),
    and PyTorch reads the checked bytes only; a file that could run code raises
    :class:`~tlcourse.errors.UnsafeFileError` naming the part refused.
    """
    path = Path(path)
    metadata, member = _read_metadata(path)
    names = recorded_class_names(metadata, path)
    pre = preprocessing_from_dict(metadata.get("preprocessing") or {}, path)
    checked = checked_export_archive(path, member)
    try:
        program = torch.export.load(checked)
    except Exception as exc:  # a damaged archive surfaces as various torch errors
        raise CourseError(
            f"{path} has tlcourse's metadata but its network could not be loaded "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). The file is "
            f"damaged or was written by an incompatible PyTorch (this is {torch.__version__}); export it again."
        ) from exc
    module = program.module(check_guards=False)  # guards are generated code; the checks below suffice
    check_network_matches(module, names, pre, path)
    return ExportedModel(
        path=path,
        model=module,
        class_names=names,
        preprocessing=pre,
        provenance=dict(metadata.get("provenance") or {}),
        file_size=path.stat().st_size,
        program=program,
    )


__all__ = [
    "PREDICT_BATCH",
    "ExportedModel",
    "check_network_matches",
    "check_top_k",
    "load_exported",
    "parse_metadata",
    "read_metadata",
    "recorded_class_names",
]
