"""Export a trained model to one file, load it back, and ``tlcourse predict``.

A trained network is only useful once it leaves the notebook. What leaves must be *more* than
the weights: a ``state_dict`` needs the Python class that built the network, and the numbers
it outputs mean nothing without the class names and the exact preprocessing (crop, resize,
mean, std) the network was trained with. A wrong mean/std is the classic silent deployment
bug: the model still answers, just worse.

So :func:`export_model` writes one file holding

- the network as a ``torch.export`` program (graph + weights; loading it needs only PyTorch,
  not tlcourse nor torchvision's model code; ``torch.export`` rather than TorchScript, which
  PyTorch deprecates and which warns on every trace, save and load);
- ``tlcourse.json`` inside the same archive: class names, preprocessing and provenance
  (backbone, dataset, accuracy, image size, tlcourse and torch versions, date).

:func:`load_exported` refuses, with a message that says what the file is and what to do,
anything that is not such an export (a ``torch.save`` checkpoint, a TorchScript file, random
bytes, a missing path), and any export that could run code when loaded (pickled weights or
inputs, extra members, code in the graph: see :mod:`tlcourse.safeload`); the file written
here holds no pickle at all. :class:`ExportedModel` predicts from PIL images or image files, and
``tlcourse predict --model FILE PATH...`` does it from the command line, writing CSV.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import io
import json
import math
import os
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.transforms import InterpolationMode

from . import atomic
from .csvsafe import SafeWriter
from .data.datasets import IMAGE_EXTENSIONS
from .errors import CourseError, InvalidParameterError
from .models.preprocessing import Preprocessing
from .safeload import check_member_names, checked_export_archive, export_root

FORMAT = "tlcourse-export"
FORMAT_VERSION = 1
METADATA_FILE = "tlcourse.json"
#: Images per forward pass when predicting: bounds memory for folders of any size.
PREDICT_BATCH = 32
#: A JPEG of more pixels than this is decoded at a reduced scale (:func:`open_image`); smaller
#: ones (a 12 MP phone photo, every photo of the course's datasets) are decoded in full.
DRAFT_ABOVE_PIXELS = 16_000_000
#: The reduced scale keeps at least this many times the preprocessing's resize size per side.
DRAFT_MARGIN = 4
#: Exit status of ``tlcourse predict`` when its stdout is closed early (128 + SIGPIPE).
STATUS_BROKEN_PIPE = 141
_MAX_BATCH = 65536

ImageLike = Any  # a PIL image, a path (str / os.PathLike) or a uint8 tensor (3, H, W)


# ----------------------------------------------------------------------------- metadata


def _preprocessing_to_dict(pre: Preprocessing) -> dict[str, Any]:
    data = asdict(pre)
    data["mean"], data["std"] = list(pre.mean), list(pre.std)
    data["interpolation"] = pre.interpolation.value
    return data


def _preprocessing_from_dict(data: Mapping[str, Any], where: Path) -> Preprocessing:
    try:
        return Preprocessing(
            crop_size=int(data["crop_size"]),
            resize_size=int(data["resize_size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=InterpolationMode(data["interpolation"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CourseError(
            f"{where}: the preprocessing recorded in this export is incomplete or invalid "
            f"({exc.__class__.__name__}: {exc}). The file was edited or damaged; export the model again."
        ) from exc


def _check_class_names(class_names: Any) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise InvalidParameterError(
            f"class_names must be a list of class names (one per model output), got {class_names!r:.80}."
        )
    names = list(class_names)
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise InvalidParameterError(f"class_names must be non-empty strings; these are not: {bad[:5]!r}.")
    if len(names) < 2:
        raise InvalidParameterError(f"class_names needs at least two classes, got {names!r}.")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidParameterError(f"class_names has duplicates: {', '.join(dupes)}. Each output needs its own name.")
    return names


def _provenance(provenance: Any, pre: Preprocessing, num_classes: int) -> dict[str, Any]:
    from . import __version__
    from .course.results import to_json_safe

    if not isinstance(provenance, Mapping):
        raise InvalidParameterError(
            "provenance must be a dict, e.g. {'backbone': 'mobilenet_v2', 'dataset': 'plantvillage', "
            f"'test_accuracy': 0.97}}; got {type(provenance).__name__}."
        )
    try:
        given = to_json_safe(dict(provenance), "provenance")
    except CourseError as exc:
        raise InvalidParameterError(
            "provenance must hold only numbers, strings, booleans, None, or lists/dicts of them "
            f"(it is stored as JSON next to the model): {str(exc).split(':')[0]}."
        ) from exc
    if "image_size" in given and given["image_size"] != pre.crop_size:
        raise InvalidParameterError(
            f"provenance says image_size={given['image_size']!r} but the preprocessing crops to "
            f"{pre.crop_size} px. Pass preprocessing.at(image_size) for the size the model was trained at."
        )
    info: dict[str, Any] = {
        "image_size": pre.crop_size,
        "num_classes": num_classes,
        "tlcourse_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    info.update(given)
    return info


# ----------------------------------------------------------------------------- export


def _example_input(example_input: torch.Tensor | None, pre: Preprocessing) -> torch.Tensor:
    size = pre.crop_size
    if example_input is None:
        generator = torch.Generator().manual_seed(0)
        return torch.randn(2, 3, size, size, generator=generator)
    if not isinstance(example_input, torch.Tensor) or example_input.ndim != 4 or example_input.shape[1] != 3:
        shape = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else type(example_input).__name__
        raise InvalidParameterError(
            f"example_input must be a float tensor (N, 3, {size}, {size}) of normalised images, got {shape}."
        )
    if not example_input.is_floating_point():
        raise InvalidParameterError(
            f"example_input must be normalised float images (preprocessing.normalize(x)), got {example_input.dtype}."
        )
    if tuple(example_input.shape[-2:]) != (size, size):
        raise InvalidParameterError(
            f"example_input is {tuple(example_input.shape[-2:])} px but the preprocessing crops to "
            f"{size}x{size}: the exported model would never see inputs of the example's size. Use "
            f"images of {size} px or pass preprocessing.at(<the example's size>)."
        )
    x = example_input.detach().to("cpu", torch.float32).contiguous()
    # batch size 1 would be specialised as a constant; two rows keep the batch dimension free
    return x[:1].repeat(2, 1, 1, 1) if len(x) == 1 else x


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str],
    preprocessing: Preprocessing,
    provenance: dict[str, Any],
    example_input: torch.Tensor | None = None,
) -> Path:
    """Write ``model`` with its class names, preprocessing and provenance to one file.

    The model is captured with ``torch.export`` in eval mode on the CPU, from a copy (the
    caller's model is left on its device, in its mode and memory layout). The batch size stays
    free; the image size is fixed to ``preprocessing.crop_size``. ``example_input`` (normalised
    images at that size) is only needed for a model that cannot run on random inputs. The
    exported program is checked against the model on the example before anything is written,
    and the file is written atomically (a crash never leaves half a model behind).
    ``provenance`` (backbone, dataset, accuracy, ...) is completed with ``image_size``,
    ``num_classes``, the tlcourse and torch versions and the date. Returns the path.
    """
    names = _check_class_names(class_names)
    if not isinstance(preprocessing, Preprocessing):
        raise InvalidParameterError(
            "preprocessing must be a tlcourse.models.Preprocessing (the one create_model returned, "
            f"at the training size: preprocessing.at(image_size)); got {type(preprocessing).__name__}."
        )
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    info = _provenance(provenance, preprocessing, len(names))
    target = Path(path)
    if target.is_dir():
        raise CourseError(f"{target} is a folder; give a file name such as {target / 'model.pt2'}.")
    x = _example_input(example_input, preprocessing)

    frozen = copy.deepcopy(model).to("cpu", torch.float32).to(memory_format=torch.contiguous_format).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        expected = frozen(x)
    if not isinstance(expected, torch.Tensor) or expected.ndim != 2 or expected.shape[1] != len(names):
        shape = tuple(expected.shape) if isinstance(expected, torch.Tensor) else type(expected).__name__
        raise CourseError(
            f"The model outputs {shape} for a batch of {len(x)} images but there are {len(names)} class "
            "names: an exported classifier must output one score per class name. Pass the class names "
            "of the data the model was trained on (and the model with its new head)."
        )
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    try:
        program = torch.export.export(frozen, (x,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # torch's own error types vary by version; say what failed
        raise CourseError(
            f"torch.export could not capture this {type(model).__name__} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Export a model built with "
            "tlcourse.models.create_model, or one without Python control flow that depends on values."
        ) from exc
    with torch.no_grad():
        got = program.module()(x)
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-4):
        raise CourseError(
            f"The exported program's outputs differ from the model's (max difference "
            f"{(got - expected).abs().max():.3g}); nothing was written to {target}. Report this with "
            "the model's architecture."
        )
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class_names": names,
        "preprocessing": _preprocessing_to_dict(preprocessing),
        "provenance": info,
        "input": {"shape": ["batch", 3, preprocessing.crop_size, preprocessing.crop_size],
                  "dtype": "float32", "meaning": "RGB, resized, centre-cropped and normalised with mean/std"},
    }
    # torch.export.save would pickle the example inputs; they are not needed to load or run the
    # program, and a file with no pickle in it is one load_exported can check completely
    program.example_inputs = None
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(metadata, indent=2)})
    atomic.write_bytes(buffer.getvalue(), target)
    return target


# ----------------------------------------------------------------------------- load


def _not_an_export(path: Path, what: str) -> CourseError:
    return CourseError(
        f"{path} is not a tlcourse model export: {what} Give the file written by "
        "tlcourse.export.export_model(model, path, ...) (lesson 07 writes runs/plant_disease_model.pt2 "
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
            f"{Path.cwd()}), or export a model first with tlcourse.export.export_model."
        )
    if path.is_dir():
        raise CourseError(f"{path} is a folder, not a model file. Give the exported file inside it.")
    if not zipfile.is_zipfile(path):
        raise _not_an_export(
            path, "it is not a model archive at all (random bytes, a truncated download, or another kind of file)."
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
    return metadata, wanted[0]


def _check_network_matches(module: nn.Module, names: list[str], pre: Preprocessing, path: Path) -> None:
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


def _recorded_class_names(metadata: Mapping[str, Any], path: Path) -> list[str]:
    try:
        return _check_class_names(metadata.get("class_names"))
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
        opened with Pillow; an unreadable file raises a :class:`CourseError` naming it.
        """
        transform = self.preprocessing.transforms()
        batch = [transform(_as_image(item)) for item in _as_list(images)]
        if not batch:
            raise InvalidParameterError("No images were given to predict.")
        return torch.stack(batch)

    @torch.inference_mode()
    def predict_proba(self, images: ImageLike | Iterable[ImageLike]) -> torch.Tensor:
        """Class probabilities ``(N, classes)`` (softmax of the logits), in batches."""
        items = _as_list(images)
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
        k = _check_top_k(top_k, len(self.class_names))
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
    graph. Every member is checked first (:func:`tlcourse.safeload.checked_export_archive`),
    and PyTorch reads the checked bytes only; a file that could run code raises
    :class:`~tlcourse.errors.UnsafeFileError` naming the part refused.
    """
    path = Path(path)
    metadata, member = _read_metadata(path)
    names = _recorded_class_names(metadata, path)
    pre = _preprocessing_from_dict(metadata.get("preprocessing") or {}, path)
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
    _check_network_matches(module, names, pre, path)
    return ExportedModel(
        path=path,
        model=module,
        class_names=names,
        preprocessing=pre,
        provenance=dict(metadata.get("provenance") or {}),
        file_size=path.stat().st_size,
        program=program,
    )


# ----------------------------------------------------------------------------- images


def _check_top_k(top_k: Any, num_classes: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_classes:
        raise InvalidParameterError(
            f"top_k must be an integer from 1 to {num_classes} (the number of classes), got {top_k!r}."
        )
    return top_k


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, (str, os.PathLike, Image.Image)) or (
        isinstance(images, torch.Tensor) and images.ndim == 3
    ):
        return [images]
    if isinstance(images, torch.Tensor):
        return list(images)
    try:
        return list(images)
    except TypeError:
        raise InvalidParameterError(
            f"images must be a list of PIL images or image paths, got {type(images).__name__}."
        ) from None


def open_image(path: str | os.PathLike[str], min_size: int | None = None) -> Image.Image:
    """Open and fully decode an image file as RGB; a :class:`CourseError` says why one cannot be.

    The decode is forced here (Pillow otherwise reads only the header), so a truncated JPEG
    fails with its name instead of later, mid-batch.

    ``min_size`` (the preprocessing's ``resize_size``) lets a JPEG of more than
    :data:`DRAFT_ABOVE_PIXELS` be decoded at 1/2, 1/4 or 1/8 scale inside the JPEG decoder
    (Pillow's ``Image.draft``), at the smallest of those scales that keeps both sides at least
    :data:`DRAFT_MARGIN` times ``min_size``: an 8000 x 8000 scan then takes 3 to 12 MB of
    pixels instead of 192 MB (and as much again for the RGB copy), and the antialiased resize
    of the preprocessing still makes the last step. The reduced decode is not the same
    pixels, and a model unsure between two classes can tip, so ordinary photos are decoded in
    full: their predictions are exactly those of a full decode. Other formats have no reduced
    decode and are read in full.

    Pillow refuses to decode an image of more than about 179 megapixels (a *decompression
    bomb*: a small file that expands to gigabytes in memory); that, and running out of memory,
    is reported as a :class:`CourseError` naming the file, like any other unreadable image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            if min_size and img.width * img.height > DRAFT_ABOVE_PIXELS:
                img.draft("RGB", (DRAFT_MARGIN * min_size, DRAFT_MARGIN * min_size))
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise CourseError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise CourseError(f"{path} is a folder, not an image file.") from None
    except UnidentifiedImageError:
        raise CourseError(
            f"{path} is not an image file Pillow can read (extension {path.suffix or 'none'}). "
            f"Give JPEG/PNG images ({', '.join(IMAGE_EXTENSIONS)})."
        ) from None
    except (Image.DecompressionBombError, MemoryError) as exc:
        why = str(exc) if isinstance(exc, Image.DecompressionBombError) else "Out of memory while decoding it."
        raise CourseError(
            f"{path}: not decoded, too large: {why} A file that expands to this many pixels is a "
            "decompression bomb or a huge scan; downscale it (e.g. to 2000 px on its long side) "
            "and classify the copy."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CourseError(
            f"{path}: the image could not be decoded ({exc}). The file is damaged or truncated "
            "(an interrupted copy or download); replace it."
        ) from None


def _as_image(item: Any, min_size: int | None = None) -> Any:
    """A PIL image or uint8 tensor the preprocessing takes; paths are opened with
    :func:`open_image` (``min_size``: see there)."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (str, os.PathLike)):
        return open_image(item, min_size)
    if isinstance(item, torch.Tensor) and item.dtype == torch.uint8 and item.ndim == 3 and item.shape[0] == 3:
        return item
    raise InvalidParameterError(
        f"Cannot predict on a {type(item).__name__}: give PIL images, image paths, or uint8 tensors (3, H, W)."
    )


# ----------------------------------------------------------------------------- the command


def _gather(paths: Sequence[str]) -> tuple[list[Path], list[str], list[str]]:
    """Image files to classify, problems (errors) and skipped files (notes), in the given order.

    A folder is walked recursively and keeps the files with an image extension; its other
    files are named as skipped. A file given explicitly is always tried: if it is not an
    image, decoding says so and counts as a failure. A path that is neither a file nor a
    folder (a named pipe, a device) is a problem, never opened: reading a pipe could wait
    forever, and a device could stream without end.
    """
    files: list[Path] = []
    problems: list[str] = []
    skipped: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            images = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS]
            skipped += [str(p) for p in found if p.suffix.lower() not in IMAGE_EXTENSIONS]
            if not images:
                problems.append(f"{path}: no image files in this folder ({', '.join(IMAGE_EXTENSIONS)}).")
            files += images
        elif path.is_file():
            files.append(path)
        elif path.exists():
            problems.append(f"{path}: not a regular file or a folder (a pipe, socket or device); "
                            "give image files or folders of them.")
        else:
            problems.append(f"{path}: no such file or folder.")
    return files, problems, skipped


def _fmt(p: float) -> str:
    return f"{p:.4f}" if math.isfinite(p) else str(p)


def _stdout_closed() -> int:
    """The reader of stdout went away (``tlcourse predict ... | head``): stop quietly.

    Nobody reads the remaining predictions, so they are not computed. Pointing stdout at
    ``os.devnull`` keeps Python from a second ``BrokenPipeError`` when it flushes stdout at
    exit. The status is 141 (128 + SIGPIPE), what a shell reports for ``cat`` or ``grep`` in
    the same place, so ``set -o pipefail`` scripts see the usual value.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return STATUS_BROKEN_PIPE


def cli_predict(args: argparse.Namespace) -> int:
    """``tlcourse predict --model FILE [--top-k K] PATH...``: CSV predictions on stdout.

    Columns ``path,predicted_class,probability`` (with ``--top-k K > 1``:
    ``path,class_1,prob_1,...,class_K,prob_K``); text cells that a spreadsheet would run as a
    formula (a photo named ``=cmd|...``) get a leading ``'`` (:mod:`tlcourse.csvsafe`).
    Unreadable images (damaged, not images, decompression bombs) and paths that are not images
    are reported on stderr, one line each, the other images are still classified, and the exit
    status is 1. A model file of the wrong kind or a bad ``--top-k`` stops at once (status 2).
    Large JPEGs are decoded at a reduced scale (:func:`open_image`). When stdout is closed
    early (``| head``), the command stops without a traceback, status 141.
    """
    metadata = read_metadata(args.model)  # fast refusal of a wrong file before the heavy load
    k = _check_top_k(args.top_k, len(_recorded_class_names(metadata, Path(args.model))))
    files, problems, skipped = _gather(args.paths)
    for note in skipped:
        print(f"tlcourse predict: skipped {note} (not an image file)", file=sys.stderr)
    exported = load_exported(args.model) if files else None
    min_size = exported.preprocessing.resize_size if exported is not None else None
    writer = SafeWriter(sys.stdout)
    failed = len(problems)
    try:
        if k == 1:
            writer.writerow(["path", "predicted_class", "probability"])
        else:
            writer.writerow(["path"] + [c for i in range(1, k + 1) for c in (f"class_{i}", f"prob_{i}")])
        for message in problems:
            print(f"tlcourse predict: {message}", file=sys.stderr)
        for start in range(0, len(files), PREDICT_BATCH):
            chunk, images = [], []
            for path in files[start : start + PREDICT_BATCH]:
                try:
                    images.append(open_image(path, min_size))
                    chunk.append(path)
                except CourseError as exc:
                    failed += 1
                    print(f"tlcourse predict: {exc}", file=sys.stderr)
            if not images:
                continue
            assert exported is not None
            for path, top in zip(chunk, exported.predict(images, top_k=k)):
                if k == 1:
                    writer.writerow([str(path), top[0][0], _fmt(top[0][1])])
                else:
                    writer.writerow([str(path)] + [x for name, p in top for x in (name, _fmt(p))])
            sys.stdout.flush()
        sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_closed()
    if failed:
        print(f"tlcourse predict: {failed} input(s) could not be classified (see above).", file=sys.stderr)
    return 1 if failed else 0


__all__ = [
    "ExportedModel",
    "IMAGE_EXTENSIONS",
    "cli_predict",
    "export_model",
    "load_exported",
    "open_image",
    "read_metadata",
]
