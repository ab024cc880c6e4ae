"""Export a trained model to one file that needs only PyTorch to run.

A trained network is only useful once it leaves the notebook. What leaves must be *more* than
the weights: a ``state_dict`` needs the Python class that built the network, and the numbers
it outputs mean nothing without the class names and the exact preprocessing (crop, resize,
mean, std) the network was trained with. A wrong mean/std is the classic silent deployment
bug: the model still answers, just worse.

So :func:`export_model` writes one file holding

- the network as a ``torch.export`` program (graph + weights; loading it needs only PyTorch,
  not tlcourse nor torchvision's model code; ``torch.export`` rather than TorchScript, which
  PyTorch deprecates and which warns on every trace, save and load);
- ``tlcourse.json`` inside the same archive (:mod:`tlcourse.deploy.metadata`): class names,
  preprocessing and provenance (backbone, dataset, accuracy, image size, tlcourse and torch
  versions, date).

The file holds no pickle at all, so :func:`tlcourse.deploy.load_exported` can check all of it
before PyTorch reads it (:mod:`tlcourse.deploy.archive_check`).
"""
from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import atomic
from ..errors import CourseError, InvalidParameterError
from ..models.preprocessing import Preprocessing
from .metadata import METADATA_FILE, build_metadata, check_class_names, complete_provenance

#: The largest batch the exported program accepts (the batch dimension stays free up to it).
_MAX_BATCH = 65536


def example_batch(example_input: torch.Tensor | None, pre: Preprocessing) -> torch.Tensor:
    """The batch an exporter traces with (ONNX export uses it too): checked, CPU float32, at least two rows."""
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
    names = check_class_names(class_names)
    if not isinstance(preprocessing, Preprocessing):
        raise InvalidParameterError(
            "preprocessing must be a tlcourse.models.Preprocessing (the one create_model returned, "
            f"at the training size: preprocessing.at(image_size)); got {type(preprocessing).__name__}."
        )
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    info = complete_provenance(provenance, preprocessing, len(names))
    target = Path(path)
    if target.is_dir():
        raise CourseError(f"{target} is a folder; give a file name such as {target / 'model.pt2'}.")
    x = example_batch(example_input, preprocessing)

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
    metadata = build_metadata(names, preprocessing, info)
    # torch.export.save would pickle the example inputs; they are not needed to load or run the
    # program, and a file with no pickle in it is one load_exported can check completely
    program.example_inputs = None
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(metadata, indent=2)})
    atomic.write_bytes(buffer.getvalue(), target)
    return target


__all__ = ["example_batch", "export_model"]
