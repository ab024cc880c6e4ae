"""Export a trained classifier to ONNX, with its class names and preprocessing inside.

ONNX is the exchange format edge runtimes read (ONNX Runtime on phones, browsers and boards,
TensorRT, OpenVINO): a graph of standard operators plus the weights, with no Python in it.
:func:`export_onnx` writes one ``.onnx`` file that :func:`tlcourse.deploy.onnx_load.load_onnx`
and ``tlcourse predict`` read back.

Two choices, made once here:

- **opset 18**: the operator-set version the graph is written against. ``torch.onnx.export``
  (the ``torch.export``-based exporter, ``dynamo=True``) translates to opset 18 natively, so
  no version conversion step runs on the graph; ONNX Runtime reads opset 18 since 1.14
  (2023), so runtimes of the last years, phones included, run the file.
- **a dynamic batch dimension**: the input is ``(batch, 3, S, S)`` with ``batch`` free and
  ``S`` fixed to the training size. One file serves a phone (batch 1) and a server (batch
  64); a fixed image size keeps every convolution's shape known, which is what lets runtimes
  and the int8 quantiser plan memory and fuse layers.

The class names, preprocessing and provenance travel in the model's ``metadata_props``
under the key ``tlcourse.json``: the same JSON as a ``torch.export`` file's
(:mod:`tlcourse.deploy.metadata`), so both kinds of file answer the same questions. The graph
is checked against the PyTorch model on the example batch before anything is written, and
the file is written atomically; the weights are always inside the file (no external data).
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import atomic
from ..errors import CourseError, InvalidParameterError
from ..models.preprocessing import Preprocessing
from .export import example_batch
from .metadata import METADATA_FILE, build_metadata, check_class_names, complete_provenance

#: The ONNX operator-set version of every file the course writes (see the module docstring).
OPSET = 18
#: The names of the graph's input and output, what other runtimes show to their users.
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def set_metadata(proto: Any, metadata: dict[str, Any]) -> None:
    """Put the course's metadata into ``proto.metadata_props`` (replacing an older copy)."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_FILE]
    del proto.metadata_props[:]
    for key, value in [*kept, (METADATA_FILE, json.dumps(metadata))]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def onnx_outputs(model_bytes: bytes, x: torch.Tensor, threads: int | None = 1) -> torch.Tensor:
    """The graph's logits for ``x``, computed by ONNX Runtime on the CPU (a trusted file only)."""
    from .onnx_load import new_session

    session = new_session(model_bytes, threads)
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str],
    preprocessing: Preprocessing,
    provenance: dict[str, Any],
    example_input: torch.Tensor | None = None,
) -> Path:
    """Write ``model`` as an ONNX file (opset :data:`OPSET`, free batch size) with its metadata.

    The arguments are those of :func:`tlcourse.deploy.export_model`. The model is exported from
    a float32 CPU copy in eval mode (the caller's model is untouched); ONNX Runtime's logits on
    the example batch must match PyTorch's to 1e-4, else nothing is written. Returns the path.
    """
    names = check_class_names(class_names)
    if not isinstance(preprocessing, Preprocessing):
        raise InvalidParameterError(
            "preprocessing must be a tlcourse.models.Preprocessing at the training size "
            f"(preprocessing.at(image_size)); got {type(preprocessing).__name__}."
        )
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    target = Path(path)
    if target.is_dir():
        raise CourseError(f"{target} is a folder; give a file name such as {target / 'model.onnx'}.")
    info = complete_provenance(provenance, preprocessing, len(names))
    info.setdefault("onnx_opset", OPSET)
    x = example_batch(example_input, preprocessing)
    frozen = copy.deepcopy(model).to("cpu", torch.float32).to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        expected = frozen(x)
    if not isinstance(expected, torch.Tensor) or expected.ndim != 2 or expected.shape[1] != len(names):
        raise CourseError(
            f"The model outputs {tuple(getattr(expected, 'shape', ()))} for {len(x)} images but there are "
            f"{len(names)} class names: an exported classifier must output one score per class name."
        )
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's progress notes are not the learner's problem
            program = torch.onnx.export(
                frozen, (x,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), external_data=False, verbose=False,
            )
    except Exception as exc:  # the exporter's error types vary by version; say what failed
        raise CourseError(
            f"torch.onnx could not export this {type(model).__name__} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Export a model built with "
            "tlcourse.models.create_model."
        ) from exc
    proto = program.model_proto
    set_metadata(proto, build_metadata(names, preprocessing, info))
    data = proto.SerializeToString()
    got = onnx_outputs(data, x)
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-4):
        raise CourseError(
            f"ONNX Runtime's outputs differ from PyTorch's (max difference {(got - expected).abs().max():.3g}); "
            f"nothing was written to {target}. Report this with the model's architecture."
        )
    atomic.write_bytes(data, target)
    return target


__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "onnx_outputs", "set_metadata"]
