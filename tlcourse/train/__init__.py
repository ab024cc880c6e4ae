"""Training: the course's one loop, its checkpoints, per-stage learning rates and schedules.

``from tlcourse.train import fit, evaluate`` is what the lessons use; the modules keep one
concern each (the per-epoch loop, checkpointing, the history, ``fit`` that composes them,
parameter groups, schedules).
"""
from __future__ import annotations

from .loop import History, accuracy, evaluate, fit, iterate_batches, predict
from .param_groups import lr_table, stage_param_groups
from .schedules import TwoPhasePlan, WarmupCosine, warmup_cosine

__all__ = [
    "History",
    "TwoPhasePlan",
    "WarmupCosine",
    "accuracy",
    "evaluate",
    "fit",
    "iterate_batches",
    "lr_table",
    "predict",
    "stage_param_groups",
    "warmup_cosine",
]
