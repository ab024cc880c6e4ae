"""Checkers for lesson 05 (fine-tuning): discriminative learning rates and layer-wise decay.

:func:`discriminative_lrs` checks the simplest scheme: the head at one rate, every trainable
backbone stage at that rate divided by a ratio. Layer-wise decay gives the head ``lr``, the
trainable stage just below it ``lr * decay``, the next ``lr * decay**2`` and so on. Writing those parameter groups by hand is a good exercise
because the typical mistakes are easy to make and silent at run time: counting the depth from
the bottom instead of from the head, counting frozen stages, one group spanning stages that
need different rates, or forgetting a stage. :func:`layer_decay_lrs` names each of these.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..._checks import is_number, is_positive_number
from ...errors import InvalidParameterError
from ..feedback import Feedback
from .common import (
    as_model,
    configured_lr,
    coverage_problems,
    fail,
    optimizer_coverage,
    param_names,
    plural,
    stage_of,
    stages_of,
)
from .registry import register_checker


@register_checker
def discriminative_lrs(
    model: nn.Module,
    optimizer: Any,
    head_lr: float | None = None,
    ratio: float = 10.0,
    rel_tol: float = 1e-6,
) -> Feedback:
    """The head trains at ``head_lr`` and every trainable backbone tensor at ``head_lr / ratio``.

    Checks the optimizer's ``param_groups``: every trainable parameter in exactly one group,
    frozen ones absent, no group mixing head and backbone, and the rates. ``head_lr=None``
    accepts any head rate and checks only the ratio. When a scheduler is attached, the rate
    checked is each group's ``initial_lr`` (the one the learner configured).
    """
    m = as_model(model)
    if isinstance(m, Feedback):
        return m
    if ratio <= 0 or (head_lr is not None and head_lr <= 0):
        raise InvalidParameterError(
            f"discriminative_lrs needs head_lr > 0 and ratio > 0, got head_lr={head_lr!r}, ratio={ratio!r}."
        )
    problems = coverage_problems(m, optimizer, allow_frozen=False)
    if not isinstance(optimizer, torch.optim.Optimizer):
        return fail(problems)
    by_id = param_names(m)
    stage_by_param = stage_of(m)
    if not any(p.requires_grad and stage_by_param[n] != "head" for n, p in m.named_parameters()):
        return Feedback(
            False,
            "No backbone parameter is trainable, so there is no lower learning rate to set: "
            "unfreeze some stages first.",
        )
    head_groups: list[tuple[int, float]] = []
    base_groups: list[tuple[int, float, list[str]]] = []
    for gi, group in enumerate(optimizer.param_groups):
        pnames = [by_id[id(p)] for p in group["params"] if id(p) in by_id and p.requires_grad]
        head = [n for n in pnames if stage_by_param[n] == "head"]
        base = [n for n in pnames if stage_by_param[n] != "head"]
        lr = configured_lr(group)
        if head and base:
            problems.append(
                f"Group {gi} mixes the head ({plural(len(head), 'tensor')}) with backbone stages "
                f"({', '.join(stages_of(base, stage_by_param))}; {plural(len(base), 'tensor')}): they share one "
                "learning rate. Put the head in its own group."
            )
        elif head:
            head_groups.append((gi, lr))
        elif base:
            base_groups.append((gi, lr, stages_of(base, stage_by_param)))
    reference = head_lr
    for gi, lr in head_groups:
        if head_lr is not None and not math.isclose(lr, head_lr, rel_tol=rel_tol, abs_tol=0.0):
            problems.append(f"The head's group (group {gi}) has lr {lr:g}; expected head_lr = {head_lr:g}.")
        elif reference is None:
            reference = lr
    if reference is not None:
        want = reference / ratio
        for gi, lr, stages in base_groups:
            if not math.isclose(lr, want, rel_tol=rel_tol, abs_tol=0.0):
                actual = reference / lr if lr else math.inf
                problems.append(
                    f"Group {gi} ({', '.join(stages)}) has lr {lr:g}, which is head lr / {actual:g}; "
                    f"expected head lr / {ratio:g} = {want:g}."
                )
    if problems:
        return fail(problems)
    stages = [s for _, _, ss in base_groups for s in ss]
    return Feedback(
        True,
        f"Head lr {reference:g}; backbone ({', '.join(stages)}) lr {reference / ratio:g} = head / {ratio:g}; "
        "every trainable tensor is in exactly one group.",
    )


def _exponent(rate: float, lr: float, decay: float) -> float | None:
    """The k with ``rate == lr * decay**k``, if it is (close to) a whole number; else None."""
    if rate <= 0 or decay in (0.0, 1.0):
        return None
    k = math.log(rate / lr) / math.log(decay)
    return float(round(k)) if abs(k - round(k)) < 1e-6 else None


@register_checker
def layer_decay_lrs(
    model: nn.Module, optimizer: Any, lr: float, decay: float, rel_tol: float = 1e-6
) -> Feedback:
    """Every trainable stage has its own rate ``lr * decay**depth``, depth counted from the head.

    Depth counts *trainable* stages only, from the head (0) downwards, as
    :func:`tlcourse.train.stage_param_groups` does: with stage5, top and head unfrozen, the
    head gets ``lr``, top ``lr * decay`` and stage5 ``lr * decay**2``. The optimizer must hold
    every trainable tensor exactly once and nothing frozen (as ``optimizer_covers_trainable``).
    """
    from ...models import trainable_stages

    if not is_positive_number(lr):
        raise InvalidParameterError(f"layer_decay_lrs needs lr > 0, got {lr!r}.")
    if not is_number(decay) or not 0 < decay < 1:
        raise InvalidParameterError(f"layer_decay_lrs needs 0 < decay < 1, got {decay!r}.")
    coverage = optimizer_coverage(model, optimizer)
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
    stage_by_param = stage_of(model)
    name_of = param_names(model)

    problems: list[str] = []
    got: dict[str, float] = {}
    for gi, group in enumerate(optimizer.param_groups):
        stages = stages_of([name_of[id(p)] for p in group["params"]], stage_by_param)
        if not stages:
            continue
        rate = configured_lr(group)
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
        return fail(problems)
    shown = ", ".join(f"{s} {want[s]:.3g}" for s in live)
    return Feedback(True, f"Layer-wise decay is right: {shown}.")


__all__ = ["discriminative_lrs", "layer_decay_lrs"]
