"""Loading an ONNX export and predicting with ONNX Runtime on the CPU.

:func:`load_onnx` gives the same :class:`~tlcourse.deploy.load.ExportedModel` as
:func:`~tlcourse.deploy.load_exported`: class names, preprocessing and provenance from the
file's ``metadata_props``, and as ``model`` an :class:`OnnxRuntimeModule`, a thin
``nn.Module`` whose forward pass is an ONNX Runtime session. So ``predict``, ``tlcourse
predict`` and :func:`~tlcourse.deploy.measure_latency` work on either kind of file unchanged.

The file is checked first (:mod:`tlcourse.deploy.onnx_check`) and the session is built from
the checked bytes with no custom-op library registered, only the ONNX format accepted and
one-file models only; a file without the course's metadata is refused, because its outputs
would have no class names and its inputs no known preprocessing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import int_at_least
from ..errors import CourseError
from .load import ExportedModel, check_network_matches, parse_metadata, recorded_class_names
from .metadata import METADATA_FILE, preprocessing_from_dict
from .onnx_check import checked_onnx_bytes


def _runtime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise CourseError(
            "ONNX Runtime is not installed, so .onnx files cannot be run here. Install the course's edge "
            "tools with `pip install -e '.[edge]'` (scripts/setup.sh does), then try again."
        ) from exc
    return onnxruntime


def new_session(model_bytes: bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for checked model bytes.

    ``threads``: intra-op threads (None: ONNX Runtime's default, one per core). Inter-op
    parallelism stays at 1 (a classifier is one chain of layers). Only the ONNX format is
    accepted (never ORT's own flatbuffer format), and no custom-op library is registered.
    """
    ort = _runtime()
    options = ort.SessionOptions()
    options.add_session_config_entry("session.load_model_format", "ONNX")
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int_at_least(threads, "threads", 1)
    options.log_severity_level = 3  # errors only: the learner does not need the optimiser's notes
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


class OnnxRuntimeModule(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call: float images in, logits out.

    No parameters: the weights live in the session. The input is copied to a contiguous
    float32 NumPy array (ONNX Runtime reads plain row-major memory), so channels-last tensors
    are accepted too.
    """

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The course metadata of an ONNX file, after the file passed every check."""
    return _metadata(Path(path), checked_onnx_bytes(path)[1])


def _metadata(path: Path, proto: Any) -> dict[str, Any]:
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_FILE not in props:
        raise CourseError(
            f"{path} is an ONNX model without tlcourse's metadata (no {METADATA_FILE!r} entry in its "
            "metadata_props), so nothing says what its outputs mean or how to prepare its inputs. Export it "
            "with tlcourse.deploy.export_onnx(model, path, class_names=..., preprocessing=..., provenance=...)."
        )
    return parse_metadata(props[METADATA_FILE], path)


def load_onnx(path: str | os.PathLike[str], threads: int | None = None) -> ExportedModel:
    """An ONNX export, checked, as an :class:`ExportedModel` that runs on ONNX Runtime (CPU).

    ``threads``: ONNX Runtime intra-op threads (None: its default). Refused with a
    :class:`~tlcourse.errors.CourseError`: a file without the course metadata, a graph whose
    input size or class count disagrees with it; with :class:`~tlcourse.errors.UnsafeFileError`:
    see :mod:`tlcourse.deploy.onnx_check`.
    """
    path = Path(path)
    data, proto = checked_onnx_bytes(path)
    metadata = _metadata(path, proto)
    names = recorded_class_names(metadata, path)
    pre = preprocessing_from_dict(metadata.get("preprocessing") or {}, path)
    try:
        session = new_session(data, threads)
    except CourseError:
        raise
    except Exception as exc:  # onnxruntime's own error types (Fail, InvalidGraph, ...)
        raise CourseError(
            f"{path}: ONNX Runtime could not load the graph ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}). The file is damaged or needs a newer ONNX Runtime."
        ) from exc
    module = OnnxRuntimeModule(session)
    check_network_matches(module, names, pre, path)
    return ExportedModel(path=path, model=module, class_names=names, preprocessing=pre,
                         provenance=dict(metadata.get("provenance") or {}), file_size=len(data))


def is_onnx_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``tlcourse predict`` reads ``path`` as ONNX (by its ``.onnx`` suffix)."""
    return Path(path).suffix.lower() == ".onnx"


__all__ = ["OnnxRuntimeModule", "is_onnx_path", "load_onnx", "new_session", "read_onnx_metadata"]
