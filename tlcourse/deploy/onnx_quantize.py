"""Post-training int8 quantisation of an ONNX export with ONNX Runtime (static, calibrated).

Int8 stores each weight in one byte instead of four and lets the CPU run convolutions on
8-bit integers. *Static* quantisation also fixes, ahead of time, the scale of every
activation: ONNX Runtime runs the float model on a **calibration set** (real training photos,
never test photos, or the accuracy measured afterwards would be flattered), records each
tensor's range (MinMax) and writes ``QuantizeLinear``/``DequantizeLinear`` pairs around the
layers (the QDQ format: standard ONNX operators only, so the result passes
:mod:`tlcourse.deploy.onnx_check` like any course file). Weights get one scale per output
channel (``per_channel``): depthwise convolutions, as in MobileNetV2 and the EfficientNet-Lite
family, have channels whose ranges differ by orders of magnitude, and one scale for the whole
tensor would flatten the small ones to zero.

The quantised file keeps the class names and preprocessing, and its provenance says how it
was made (``quantization``: method, calibration images).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .. import atomic
from .._checks import int_at_least
from ..errors import CourseError, InvalidParameterError
from .metadata import METADATA_FILE
from .onnx_check import checked_onnx_bytes
from .onnx_export import set_metadata


#: The most test accuracy (a fraction) static int8 has cost the course's leaf classifiers in its own
#: measurements (MobileNetV2 at 128 px lost about 6 points, every layer quantised); the tests hold
#: quantize_int8 to it, and lesson 09 compares its run with it. A larger drop means the calibration
#: went wrong (too few photos, photos prepared differently from the model's inputs).
INT8_TYPICAL_DROP = 0.10


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over a tensor of normalised images."""

    def __init__(self, input_name: str, images: torch.Tensor, batch_size: int) -> None:
        self._batches = iter(images.split(batch_size))
        self._input_name = input_name

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch.contiguous().numpy()}

    def rewind(self) -> None:  # pragma: no cover - only called by calibration methods the course does not use
        raise CourseError("The calibration images can be read only once.")


def _drop_unused_domains(proto: Any) -> None:
    """Remove the opset imports no node uses: the quantiser declares every domain it knows
    (``com.microsoft``, training, ...), and the course refuses files that import non-standard ones."""
    used = {node.domain for node in proto.graph.node} | {""}
    kept = [(o.domain, o.version) for o in proto.opset_import if o.domain in used]
    del proto.opset_import[:]
    for domain, version in kept:
        entry = proto.opset_import.add()
        entry.domain, entry.version = domain, version


def _check_images(images: Any, size: int) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise InvalidParameterError(
            f"calibration_images must be normalised training images (N, 3, {size}, {size}), got "
            f"{tuple(getattr(images, 'shape', ())) or type(images).__name__}: preprocessing.normalize(train.images)."
        )
    if not images.is_floating_point():
        raise InvalidParameterError("calibration_images are raw uint8 pixels; normalise them with the recorded "
                                    "preprocessing first (preprocessing.normalize(images)).")
    int_at_least(len(images), "the number of calibration images", 1)
    return images.detach().to("cpu", torch.float32)


def quantize_int8(
    onnx_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    calibration_images: torch.Tensor,
    *,
    batch_size: int = 16,
    per_channel: bool = True,
) -> Path:
    """Write the int8 version of the course ONNX file ``onnx_path`` to ``out_path``.

    ``calibration_images``: normalised photos from the *training* split, ``(N, 3, S, S)`` at
    the file's image size (a few per class suffice: they set ranges, they teach nothing).
    Returns ``out_path``; the file is written atomically and carries the original's metadata,
    with ``provenance.quantization`` added.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = Path(onnx_path)
    _, proto = checked_onnx_bytes(source)  # only the course's own kind of file is quantised
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_FILE not in props:
        raise CourseError(f"{source} has no tlcourse metadata; quantise a file written by export_onnx.")
    metadata = json.loads(props[METADATA_FILE])
    size = int(metadata["preprocessing"]["crop_size"])
    images = _check_images(calibration_images, size)
    int_at_least(batch_size, "batch_size", 1)
    target = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="tlcourse-int8-") as tmp:
        checked, prepared, quantised = (Path(tmp) / f"{n}.onnx" for n in ("checked", "prepared", "int8"))
        checked.write_bytes(proto.SerializeToString())  # the checked bytes, in a folder of our own
        # shape inference + graph clean-up: what ONNX Runtime's docs ask for before static quantisation
        quant_pre_process(str(checked), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(quantised), _Calibration(proto.graph.input[0].name, images, batch_size),
            quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        )
        import onnx

        result = onnx.load_model(str(quantised), load_external_data=False)
    _drop_unused_domains(result)
    metadata.setdefault("provenance", {})["quantization"] = {
        "method": "onnxruntime static, QDQ, MinMax", "weights": "int8" + (" per channel" if per_channel else ""),
        "activations": "uint8", "calibration_images": len(images),
    }
    set_metadata(result, metadata)
    atomic.write_bytes(result.SerializeToString(), target)
    return target


__all__ = ["INT8_TYPICAL_DROP", "quantize_int8"]
