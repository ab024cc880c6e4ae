"""Checkers for lesson 01 (the feature hierarchy): which stages of a backbone train.

``trainable_stages`` is introduced here (freeze the early, general stages and keep the later
ones learning) and reused by the banks of lessons 05, 06 and 07.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..feedback import Feedback
from .common import as_model, check_stage_names, fail, trainable_problems, trainable_summary
from .registry import register_checker


@register_checker
def trainable_stages(model: nn.Module, expected: Sequence[str]) -> Feedback:
    """Exactly the stages in ``expected`` (e.g. ``["stage5", "top", "head"]``) are trainable."""
    m = as_model(model)
    if isinstance(m, Feedback):
        return m
    expected = check_stage_names(m, expected)
    problems = trainable_problems(m, expected)
    if problems:
        return fail(problems)
    return Feedback(
        True, f"Trainable: {', '.join(expected)}; everything else is frozen. {trainable_summary(m)}."
    )


__all__ = ["trainable_stages"]
