"""Mixed precision: running a network's convolutions and matrix products in a 16-bit float format.

Where the hardware computes 16-bit floats natively, autocast runs the heavy operations in one
(half the memory traffic, and on matrix units several times the arithmetic) while the weights,
the optimizer and the loss stay in float32. ``amp``, as ``fit``, ``train_one_epoch``,
``evaluate`` and ``extract_features`` take it:

- ``True`` (their default): mixed precision on CUDA (bfloat16 where the GPU has it, else
  float16 with a loss scaler); float32 on every other device;
- ``"bfloat16"``: bfloat16 autocast on the CPU as well. It pays only on a CPU with bfloat16
  units (Intel's AVX512-BF16 and AMX, AMD's Zen 4 and later): elsewhere it is emulated and
  slower than float32, so it is refused there (:func:`native_bfloat16` tells which);
- ``False``: float32 everywhere.

One operation is an exception on the CPU: oneDNN's backward pass of a *strided depthwise*
convolution (MobileNet's and EfficientNet's downsampling blocks) is 12-14x slower in bfloat16
than in float32 (``bench/bench_bfloat16.py``). :func:`cpu_float32_where_slow` keeps those few
convolutions in float32 while a model trains under CPU autocast.
"""
from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
from torch import nn

from .errors import CourseError


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's own test: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN, or without that query
        return False


def native_bfloat16(device: str | torch.device) -> bool:
    """Whether bfloat16 autocast pays on ``device``: a CUDA GPU with bfloat16, or a CPU with bfloat16 units."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bfloat16()


def autocast_dtype(device: torch.device, amp: bool | str) -> torch.dtype | None:
    """The 16-bit format autocast uses for ``amp`` on ``device``, or None for float32 throughout."""
    if not (isinstance(amp, bool) or amp == "bfloat16"):
        raise CourseError(f"amp must be True (mixed precision on CUDA), False (float32) or 'bfloat16' "
                          f"(bfloat16 on the CPU as well), got {amp!r}.")
    if amp is False:
        return None
    if amp is True:
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type in ("cpu", "cuda") and not native_bfloat16(device):
        raise CourseError(
            f"amp='bfloat16' asks for bfloat16 on {device}, which has no bfloat16 units: it would be emulated "
            "and slower than float32. Use amp=True (float32 on this device), or check first with "
            "tlcourse.precision.native_bfloat16(device)."
        )
    return torch.bfloat16


def autocast(device: torch.device, amp: bool | str) -> contextlib.AbstractContextManager:
    """A reusable context that runs the forward pass in the format of ``amp`` (or does nothing)."""
    dtype = autocast_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _is_strided_depthwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
            and max(module.stride) > 1)


def _float32_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_autocast_enabled("cpu"):
        return type(conv).forward(conv, x)
    with torch.autocast("cpu", enabled=False):
        return type(conv).forward(conv, x.float())


@contextlib.contextmanager
def cpu_float32_where_slow(model: nn.Module, device: torch.device, amp: bool | str) -> Iterator[int]:
    """While inside, ``model``'s strided depthwise convolutions run in float32 under CPU autocast.

    Yields how many convolutions it switched (0 when ``amp`` gives no CPU autocast). Their
    ``forward`` is replaced on the instances only, and restored on leaving: the weights, the
    state dict and an export after training are untouched.
    """
    if device.type != "cpu" or autocast_dtype(device, amp) is None:
        yield 0
        return
    switched = [m for m in model.modules() if _is_strided_depthwise(m) and "forward" not in vars(m)]
    for conv in switched:
        conv.forward = types.MethodType(_float32_forward, conv)
    try:
        yield len(switched)
    finally:
        for conv in switched:
            del conv.forward


#: A lesson's ``precision`` parameter, and what each asks for.
PRECISION_SETTINGS = ("auto", "float32", "bfloat16")


def amp_for(setting: str, device: str | torch.device) -> bool | str:
    """The ``amp`` argument for a lesson's ``precision`` parameter on ``device``.

    ``"auto"``: bfloat16 on a CPU with bfloat16 units, the usual mixed precision on CUDA, float32
    elsewhere; ``"float32"``: float32 everywhere (to compare, or to reproduce a float32 run);
    ``"bfloat16"``: bfloat16 autocast, refused where the device would only emulate it.
    """
    device = torch.device(device)
    if setting == "auto":
        return "bfloat16" if device.type == "cpu" and cpu_has_bfloat16() else True
    if setting == "float32":
        return False
    if setting == "bfloat16":
        autocast_dtype(device, "bfloat16")  # refuses a device without bfloat16 units, with the reason
        return "bfloat16"
    raise CourseError(f"precision must be one of {', '.join(map(repr, PRECISION_SETTINGS))}, got {setting!r}.")


def describe(device: str | torch.device, amp: bool | str) -> str:
    """In words: the number format a pass with ``amp`` computes in on ``device``."""
    dtype = autocast_dtype(torch.device(device), amp)
    return "float32" if dtype is None else f"mixed precision ({str(dtype).removeprefix('torch.')} autocast)"


__all__ = ["PRECISION_SETTINGS", "amp_for", "autocast", "autocast_dtype", "cpu_float32_where_slow", "cpu_has_bfloat16",
           "describe", "native_bfloat16"]
