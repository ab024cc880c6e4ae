"""The first cell after a lesson's parameters: check them, seed, pick the device, record.

Every notebook starts the same way; doing it in one call keeps that plumbing out of the
lessons and guarantees the run record (parameters, seed, versions, device) is always written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..device import pick_device, seed_everything
from .params import check_parameters
from .results import record_run


@dataclass
class Lesson:
    params: dict[str, Any]
    device: torch.device
    seed: int

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Lesson(device={self.device}, threads={torch.get_num_threads()}; {shown})"


def start_lesson(**params: Any) -> Lesson:
    """Validate ``params`` (bad values stop here, before any work), seed, choose the device.

    Pass every parameter of the notebook's ``parameters`` cell. Returns a :class:`Lesson`
    whose ``device`` the notebook hands to ``fit`` and friends.
    """
    check_parameters(**params)
    seed = int(params.get("seed", 0))
    seed_everything(seed)
    device = pick_device(params.get("device", "auto"))
    record_run(params, seed, device)
    lesson = Lesson(dict(params), device, seed)
    print(lesson)
    return lesson
