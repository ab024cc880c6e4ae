"""Checkers for lesson 05 (fine-tuning): layer-wise learning-rate decay.

Layer-wise decay gives the head ``lr``, the trainable stage just below it ``lr * decay``, the
next ``lr * decay**2`` and so on. Writing those parameter groups by hand is a good exercise
because the typical mistakes are easy to make and silent at run time: counting the depth from
the bottom instead of from the head, counting frozen stages, one group spanning stages that
need different rates, or forgetting a stage. The checker names each of these.

A bank refers to it as ``checker: "tlcourse.exercises.checkers_finetuning:layer_decay_lrs"``.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import InvalidParameterError
from .checkers import optimizer_covers_trainable
from .feedback import Feedback


def _group_lr(group: dict[str, Any]) -> float:
    # A scheduler keeps the configured rate as initial_lr and may have changed lr (warm-up).
    return float(group.get("initial_lr", group["lr"]))


def _exponent(rate: float, lr: float, decay: float) -> float | None:
    """The k with ``rate == lr * decay**k``, if it is (close to) a whole number; else None."""
    if rate <= 0 or decay in (0.0, 1.0):
        return None
    k = math.log(rate / lr) / math.log(decay)
    return float(round(k)) if abs(k - round(k)) < 1e-6 else None


def layer_decay_lrs(
    model: nn.Module, optimizer: Any, lr: float, decay: float, rel_tol: float = 1e-6
) -> Feedback:
    """Every trainable stage has its own rate ``lr * decay**depth``, depth counted from the head.

    Depth counts *trainable* stages only, from the head (0) downwards, as
    :func:`tlcourse.optim.stage_param_groups` does: with stage5, top and head unfrozen, the
    head gets ``lr``, top ``lr * decay`` and stage5 ``lr * decay**2``. The optimizer must hold
    every trainable tensor exactly once and nothing frozen (as ``optimizer_covers_trainable``).
    """
    from ..models import stage_of_parameters, trainable_stages

    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise InvalidParameterError(f"layer_decay_lrs needs lr > 0, got {lr!r}.")
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
        raise InvalidParameterError(f"layer_decay_lrs needs 0 < decay < 1, got {decay!r}.")
    coverage = optimizer_covers_trainable(model, optimizer)
    if not coverage.correct:
        return coverage
    live = trainable_stages(model)
    if len(live) < 2:
        return Feedback(
            False,
            f"Only {', '.join(live) or 'nothing'} is trainable, so there is no depth to decay over: "
            "unfreeze some stages below the head first.",
        )
    depth = {stage: d for d, stage in enumerate(reversed(live))}
    want = {stage: lr * decay**d for stage, d in depth.items()}
    stage_of = stage_of_parameters(model)
    name_of = {id(p): n for n, p in model.named_parameters()}

    problems: list[str] = []
    got: dict[str, float] = {}
    for gi, group in enumerate(optimizer.param_groups):
        stages = []
        for p in group["params"]:
            stage = stage_of[name_of[id(p)]]
            if stage not in stages:
                stages.append(stage)
        if not stages:
            continue
        rate = _group_lr(group)
        if len({want[s] for s in stages}) > 1:
            problems.append(
                f"Group {gi} holds {', '.join(stages)}, which need different rates "
                f"({', '.join(f'{s}: {want[s]:.3g}' for s in stages)}): give each stage its own group."
            )
            continue
        for stage in stages:
            got[stage] = rate
            if math.isclose(rate, want[stage], rel_tol=rel_tol):
                continue
            k = _exponent(rate, lr, decay)
            seen = f"lr × decay^{k:g}" if k is not None else f"{rate:.3g}"
            if stage == "head":
                problems.append(f"The head has lr {rate:.3g} ({seen}); the head gets lr itself = {lr:.3g}.")
                continue
            problems.append(
                f"{stage} has lr {rate:.3g} ({seen}); it is {depth[stage]} trainable "
                f"stage{'s' if depth[stage] != 1 else ''} below the head, so it needs "
                f"lr × decay^{depth[stage]} = {want[stage]:.3g}."
            )
    if problems and len(got) == len(live):
        ordered = [got[s] for s in live]  # input -> output
        if ordered[-1] < max(ordered[:-1]):
            problems.insert(
                0,
                "The decay runs the wrong way: the head must get the largest rate (lr) and the rates "
                "shrink going down towards the stem.",
            )
        elif all(math.isclose(r, ordered[0], rel_tol=rel_tol) for r in ordered):
            problems.insert(0, f"Every stage has the same rate ({ordered[0]:.3g}): no decay was applied.")
        elif all(_exponent(got[s], lr, decay) == depth[s] + 1 for s in live):
            problems.insert(
                0,
                "Every depth is off by one: the head is depth 0 and gets lr itself, the stage just "
                "below it lr × decay.",
            )
    if problems:
        if len(problems) == 1:
            return Feedback(False, problems[0])
        return Feedback(False, "\n".join(f"- {p}" for p in problems))
    shown = ", ".join(f"{s} {want[s]:.3g}" for s in live)
    return Feedback(True, f"Layer-wise decay is right: {shown}.")


__all__ = ["layer_decay_lrs"]
