"""fit's checkpoints: written atomically after every epoch, read back as tensors and plain data.

A checkpoint holds everything a resumed run needs to give the numbers an uninterrupted run
would have given: the weights, the optimizer's and scheduler's state, the history, the best
epoch's weights (for early stopping), and torch's RNG state (dropout, augmentation). It holds
nothing but tensors, numbers, strings and containers of them, so it loads weights-only: a
checkpoint copied from elsewhere cannot run code when it is resumed.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import atomic
from ..errors import CourseError
from ..safeload import load_plain
from .history import History

#: What every checkpoint fit writes holds (``scheduler``, ``best_*`` may be None / absent).
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "history", "rng")


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    epoch: int,
    history: History,
    best_loss: float,
    best_state: dict[str, torch.Tensor] | None,
) -> Path:
    """Write the state after ``epoch`` to ``path`` atomically (complete or not there at all)."""
    return atomic.torch_save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": epoch,
            "history": history.records,
            "best_epoch": history.best_epoch,
            "best_loss": best_loss,
            "best_model": best_state,
            "rng": torch.get_rng_state(),
        },
        path,
    )


def load_checkpoint(path: str | os.PathLike, device: torch.device) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, loaded as tensors and plain data only.

    A checkpoint may have been copied from elsewhere, and a full unpickle would run any code
    hidden in it; what ``fit`` writes (state dicts, numbers, the history) loads weights-only.
    """
    try:
        state = load_plain(path, map_location=device)
    except CourseError as exc:
        raise type(exc)(
            f"Cannot resume: the checkpoint {exc} Resume only from a checkpoint that "
            "fit(checkpoint_path=...) wrote, or train again without resume=True."
        ) from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CourseError(
            f"Cannot resume from {path}: it is not a checkpoint written by fit (no {', '.join(missing)}). "
            "Pass the checkpoint_path a previous fit wrote, or train again without resume=True."
        )
    return state


def resume_from(
    path: Path | None,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    history: History,
    device: torch.device,
) -> tuple[int, float, dict[str, torch.Tensor] | None]:
    """Load the checkpoint at ``path`` into the run; return (next epoch, best loss, best weights).

    Restores torch's global RNG too, so dropout and augmentation continue the sequence the
    interrupted run would have drawn.
    """
    if path is None or not path.is_file():
        raise CourseError(f"resume=True but there is no checkpoint at {path}. Train once with checkpoint_path set.")
    state = load_checkpoint(path, device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    history.records = list(state["history"])
    history.best_epoch = state.get("best_epoch")
    torch.set_rng_state(state["rng"])
    return state["epoch"] + 1, state.get("best_loss", math.inf), state.get("best_model")


__all__ = ["CHECKPOINT_KEYS", "load_checkpoint", "resume_from", "save_checkpoint"]
