"""What a learner's freezing and optimizer code leaves behind, set up in one line for the checker tests."""
from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from tlcourse.models import stage_names, stage_of_parameters


def train_only(model: nn.Module, stages: Iterable[str]) -> nn.Module:
    """``model`` with exactly the parameters of ``stages`` trainable (changed in place, returned)."""
    stages = set(stages)
    stage_of = stage_of_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad = stage_of[name] in stages
    return model


def train_from(model: nn.Module, first: str) -> nn.Module:
    """``model`` with ``first`` and every stage above it trainable, the stages below frozen."""
    order = stage_names(model)
    return train_only(model, order[order.index(first):])


def params_of(model: nn.Module, stages: Iterable[str], trainable_only: bool = True) -> list[nn.Parameter]:
    """The parameters of ``stages`` (only the trainable ones unless ``trainable_only=False``)."""
    stages = set(stages)
    stage_of = stage_of_parameters(model)
    return [p for n, p in model.named_parameters() if stage_of[n] in stages and (p.requires_grad or not trainable_only)]
