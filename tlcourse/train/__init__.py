"""Training: the course's one loop, its checkpoints, per-stage learning rates and schedules.

``from tlcourse.train import fit, evaluate`` is what the lessons use; the modules keep one
concern each (the per-epoch loop, checkpointing, the history, ``fit`` that composes them,
parameter groups, schedules, the learning-rate range test).
"""
from __future__ import annotations

from .checkpoint import load_checkpoint, save_checkpoint
from .fitting import fit
from .history import History
from .loop import accuracy, evaluate, iterate_batches, predict, train_one_epoch
from .lr_range import LRSweep, lr_range_test
from .param_groups import lr_table, stage_param_groups
from .schedules import TwoPhasePlan, WarmupCosine, warmup_cosine

__all__ = [
    "History",
    "LRSweep",
    "TwoPhasePlan",
    "WarmupCosine",
    "accuracy",
    "evaluate",
    "fit",
    "iterate_batches",
    "load_checkpoint",
    "lr_range_test",
    "lr_table",
    "predict",
    "save_checkpoint",
    "stage_param_groups",
    "train_one_epoch",
    "warmup_cosine",
]
