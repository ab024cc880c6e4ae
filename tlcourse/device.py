"""Device choice, seeding and a record of the software a result was computed with."""
from __future__ import annotations

import os
import platform
import random
import sys
from typing import Any

import numpy as np
import torch

from ._checks import int_at_least
from .errors import CourseError, InvalidParameterError

_VALID = ("auto", "cpu", "cuda", "mps")


def pick_device(requested: str | torch.device | None = "auto") -> torch.device:
    """Return the device to run on.

    ``"auto"`` (or ``None``) prefers CUDA, then Apple's MPS, then the CPU, so the same
    notebook runs on a laptop and on a GPU server. Asking for a device that is not there is
    an error rather than a silent fall back to the CPU, because a lesson's timings and
    parameters assume the device the learner asked for.
    """
    if isinstance(requested, torch.device):
        requested = str(requested)
    requested = (requested or "auto").lower()
    kind = requested.split(":")[0]
    if kind not in _VALID:
        raise InvalidParameterError(
            f"Unknown device {requested!r}. Use one of: {', '.join(_VALID)} (or 'cuda:N')."
        )
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if has_mps:
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise CourseError(
            "device='cuda' was requested but this machine has no usable CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). "
            "Use device='auto' or device='cpu'; the classroom defaults run on a CPU in minutes."
        )
    if kind == "mps" and not has_mps:
        raise CourseError(
            "device='mps' was requested but Apple's MPS backend is not available here. "
            "Use device='auto' or device='cpu'."
        )
    return torch.device(requested)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way.

    On the CPU, the same seed then gives the same numbers run after run (the course tests
    this). cuDNN's fastest kernels are not deterministic, so GPU runs can differ in the last
    digits; we keep them fast rather than exact.
    """
    seed = int_at_least(seed, "seed", 0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return torch.Generator().manual_seed(seed)


def environment_info(device: torch.device | None = None) -> dict[str, Any]:
    """Versions and hardware, recorded next to every result so it can be reproduced."""
    import torchvision

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        from . import __version__

        info["tlcourse"] = __version__
    except ImportError:  # pragma: no cover - during package import
        pass
    if device is not None:
        info["device"] = str(device)
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info
