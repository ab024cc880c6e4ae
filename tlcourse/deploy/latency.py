"""Measuring what deployment cares about: latency, throughput, file size, machine load.

Choosing a model to deploy is a trade between accuracy and cost, and the cost has to be
*measured* on the machine that will run it: parameter counts and FLOPs do not predict CPU
latency well (depthwise convolutions are cheap in FLOPs but memory-bound; a memory layout
change can be worth 1.5-3x). Lesson 09 and the benchmarks in ``bench/`` use the same helpers,
so a figure in a notebook and a figure in ``bench/README.md`` mean the same thing:

- :func:`measure_latency`: median (and spread) of timed forward passes of one batch, after a
  warm-up, in eval mode under ``torch.inference_mode``; ``batch_size=1`` is what a phone app
  classifying one photo feels, a larger batch is what a server's throughput is made of.
- :func:`throughput`: images per second at a batch size.
- :func:`saved_size_mb` and :func:`file_size_mb`: what a model costs on disk.
- :func:`machine_load`: the load average, recorded next to every timing because other
  programs running on the same cores slow it down (timings compare only within one run).
"""
from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import int_at_least
from ..device import pick_device
from ..errors import CourseError, InvalidParameterError
from ..models.modes import evaluating


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run a block with ``threads`` intra-op CPU threads, then restore the previous number.

    ``None`` leaves the setting alone. Timings are only comparable at the same thread count,
    so the benchmarks fix it (2 threads: a laptop's share of its cores).
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int_at_least(threads, "threads", 1))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _first_conv_is_channels_last(model: nn.Module) -> bool | None:
    for p in model.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return None


def _input_batch(
    images: torch.Tensor | None, image_size: int | None, batch_size: int, seed: int
) -> torch.Tensor:
    """The batch to time: real images repeated to ``batch_size``, or a seeded random batch.

    The values do not change a CNN's cost (every pixel goes through the same arithmetic), but
    real normalised images keep the lesson's measurements about the lesson's data.
    """
    if images is None:
        if image_size is None:
            raise InvalidParameterError("Give image_size (pixels per side) or a batch of images to time.")
        int_at_least(image_size, "image_size", 16)
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(batch_size, 3, image_size, image_size, generator=generator)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise InvalidParameterError(
            f"images must be a float tensor (N, C, H, W), got {type(images).__name__} "
            f"{tuple(getattr(images, 'shape', ()))}."
        )
    if images.dtype == torch.uint8:
        raise CourseError(
            "images are raw uint8 pixels; normalise them with the backbone's preprocessing first "
            "(preprocessing.normalize(images)), as the deployed model will receive them."
        )
    if image_size is not None and tuple(images.shape[-2:]) != (image_size, image_size):
        raise InvalidParameterError(
            f"image_size={image_size} but the images are {tuple(images.shape[-2:])}; give one or the other."
        )
    if len(images) == 0:
        raise InvalidParameterError("images is an empty batch.")
    reps = -(-batch_size // len(images))
    return images.repeat(reps, 1, 1, 1)[:batch_size].float()


def measure_latency(
    model: nn.Module,
    image_size: int | None = None,
    batch_size: int = 1,
    repeats: int = 20,
    channels_last: bool = True,
    *,
    images: torch.Tensor | None = None,
    warmup: int = 3,
    device: str | torch.device | None = "cpu",
    threads: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``repeats`` forward passes of one batch and summarise them.

    The model runs in eval mode under ``torch.inference_mode`` (what a deployed model does),
    after ``warmup`` untimed passes (the first calls allocate memory and pick kernels).
    ``channels_last`` converts the model and input to the channels-last memory layout, the
    fast layout for convolutions on CPUs. The model's mode, device and memory layout are
    restored afterwards, so measuring never changes the model a lesson keeps using.

    Returns a dict: ``median_ms`` / ``min_ms`` / ``p90_ms`` per batch, ``per_image_ms`` and
    ``images_per_s`` (from the median), and the settings (``batch_size``, ``image_size``,
    ``channels_last``, ``threads``, ``device``, ``repeats``, ``load`` = 1-minute load average).
    The median, not the mean, because a shared machine adds rare long pauses.
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch nn.Module, got {type(model).__name__}.")
    int_at_least(batch_size, "batch_size", 1)
    int_at_least(repeats, "repeats", 1)
    int_at_least(warmup, "warmup", 0)
    device = pick_device(device)
    x = _input_batch(images, image_size, batch_size, seed).to(device)
    first = next(model.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    was_channels_last = _first_conv_is_channels_last(model)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    times: list[float] = []
    # fixed_ok: a graph loaded from a torch.export file (tlcourse.deploy.load_exported) refuses
    # eval() and always runs as exported, which is what a timing of it should see
    with torch_threads(threads) as used_threads, evaluating(model, fixed_ok=True):
        try:
            model.to(device)
            model.to(memory_format=layout)
            x = x.contiguous(memory_format=layout)
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            with torch.inference_mode():
                for _ in range(warmup):
                    model(x)
                sync()
                for _ in range(repeats):
                    start = time.perf_counter()
                    model(x)
                    sync()
                    times.append(time.perf_counter() - start)
        finally:
            model.to(home)
            if was_channels_last is not None:
                model.to(memory_format=torch.channels_last if was_channels_last else torch.contiguous_format)
    ms = sorted(t * 1000 for t in times)
    median = statistics.median(ms)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return {
        "batch_size": batch_size,
        "image_size": int(x.shape[-1]),
        "channels_last": bool(channels_last),
        "threads": used_threads,
        "device": str(device),
        "repeats": repeats,
        "median_ms": median,
        "min_ms": ms[0],
        "p90_ms": p90,
        "per_image_ms": median / batch_size,
        "images_per_s": 1000.0 * batch_size / median,
        "load": machine_load()["load_1min"],
    }


def throughput(
    model: nn.Module,
    image_size: int | None = None,
    batch_size: int = 32,
    repeats: int = 5,
    channels_last: bool = True,
    **kwargs: Any,
) -> float:
    """Images per second at ``batch_size`` (inference), from :func:`measure_latency`'s median."""
    return float(measure_latency(model, image_size, batch_size, repeats, channels_last, **kwargs)["images_per_s"])


def saved_size_mb(model_or_state: nn.Module | dict[str, Any]) -> float:
    """Size in MB (10^6 bytes) of ``torch.save(model.state_dict())``: the weights on disk.

    Serialised to memory, so nothing is written. About 4 bytes per float32 parameter and
    BatchNorm statistic, plus a little bookkeeping per tensor.
    """
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    if not isinstance(state, dict):
        raise InvalidParameterError(f"Expected a model or a state_dict, got {type(model_or_state).__name__}.")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes / 1e6


def file_size_mb(path: str | os.PathLike[str]) -> float:
    """Size of the file at ``path`` in MB (10^6 bytes), e.g. an exported model."""
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"No file at {path}: export or save the model there first, then measure it.")
    return path.stat().st_size / 1e6


def machine_load() -> dict[str, Any]:
    """The load average (1, 5, 15 minutes), CPU count and torch's thread count.

    A load above the number of cores means other programs compete for them, and every timing
    taken meanwhile is inflated; ratios measured within one run stay meaningful.
    """
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):  # Windows has no load average
        one = five = fifteen = float("nan")
    return {
        "load_1min": round(one, 2),
        "load_5min": round(five, 2),
        "load_15min": round(fifteen, 2),
        "cpus": os.cpu_count() or 1,
        "torch_threads": torch.get_num_threads(),
    }


__all__ = [
    "file_size_mb",
    "machine_load",
    "measure_latency",
    "saved_size_mb",
    "throughput",
    "torch_threads",
]
