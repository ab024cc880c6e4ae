"""Checkers for lesson 05 (fine-tuning): discriminative learning rates, layer-wise decay, a rate
read off a learning-rate range test, and a warm-up + cosine schedule built from torch's schedulers.

:func:`discriminative_lrs` checks the simplest scheme: the head at one rate, every trainable
backbone stage at that rate divided by a ratio. Layer-wise decay gives the head ``lr``, the
trainable stage just below it ``lr * decay``, the next ``lr * decay**2`` and so on. Writing those parameter groups by hand is a good exercise
because the typical mistakes are easy to make and silent at run time: counting the depth from
the bottom instead of from the head, counting frozen stages, one group spanning stages that
need different rates, or forgetting a stage. :func:`layer_decay_lrs` names each of these.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from ..._checks import is_int, is_number, is_positive_number
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


# --------------------------------------------------------------------------- choosing a rate


@register_checker
def lr_from_sweep(lr: Any, sweep: Any, lowest_factor: float = 100.0) -> Feedback:
    """A rate read off a range test (:func:`tlcourse.train.lr_range_test`): below the rate of
    the lowest smoothed loss (at least 2x), not more than ``lowest_factor`` x below it, and on
    the part of the curve where the loss has clearly started to fall (at least a tenth of the
    way from the first loss down to the lowest)."""
    value = lr.item() if isinstance(lr, torch.Tensor) and lr.numel() == 1 else lr
    if not is_positive_number(value):
        return Feedback(False, f"The rate must be one positive number, got {lr!r}.")
    needed = ("lrs", "smoothed", "lr_at_min", "loss_at")
    if not all(hasattr(sweep, k) for k in needed):
        return Feedback(False, f"Pass the sweep that train.lr_range_test returned (sweep=...), got a {type(sweep).__name__}.")
    lr, edge = float(value), float(sweep.lr_at_min)
    first, lowest = float(sweep.smoothed[0]), float(min(sweep.smoothed))
    if lr > sweep.lrs[-1] or lr < sweep.lrs[0]:
        return Feedback(False, f"{lr:g} is outside the swept range ({sweep.lrs[0]:.1g} .. {sweep.lrs[-1]:.1g}): read a rate off the curve.")
    if lr >= edge:
        return Feedback(
            False,
            f"{lr:g} is at or past the lowest point of the curve ({edge:.2g}): there the steps are about "
            "to overshoot, and training at that rate is on the edge of diverging. Go about 10x lower.",
        )
    if lr > edge / 2:
        return Feedback(False, f"{lr:g} is barely below the minimum ({edge:.2g}); leave a margin: about 10x lower.")
    if lr < edge / lowest_factor:
        return Feedback(False, f"{lr:g} is more than {lowest_factor:g}x below the minimum ({edge:.2g}): training would crawl.")
    if sweep.loss_at(lr) > first - 0.1 * (first - lowest):
        return Feedback(
            False,
            f"At {lr:g} the loss has hardly begun to fall (smoothed {sweep.loss_at(lr):.3f}, it starts at "
            f"{first:.3f}): pick a rate on the steep, falling part of the curve.",
        )
    return Feedback(
        True,
        f"{lr:g}: {edge / lr:.0f}x below the minimum at {edge:.2g}, where the loss is already falling "
        f"(smoothed {sweep.loss_at(lr):.3f}, from {first:.3f}).",
    )


def _scheduled_rates(scheduler: Any, optimizer: torch.optim.Optimizer, steps: int) -> list[list[float]]:
    """Each group's rate at each of ``steps`` optimizer steps; the scheduler is given back as it was."""
    saved_sched = scheduler.state_dict()
    saved_lrs = [g["lr"] for g in optimizer.param_groups]
    rates = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": no training here
            for _ in range(steps):
                rates.append([g["lr"] for g in optimizer.param_groups])
                scheduler.step()
    finally:
        scheduler.load_state_dict(saved_sched)
        for group, lr in zip(optimizer.param_groups, saved_lrs):
            group["lr"] = lr
    return rates


def _schedule_problems(rates: list[float], peak: float, warmup_steps: int, total_steps: int) -> list[str]:
    problems: list[str] = []
    top = max(range(len(rates)), key=rates.__getitem__)
    if top != warmup_steps or not math.isclose(rates[top], peak, rel_tol=1e-4):
        problems.append(
            f"The rate peaks at {rates[top]:.3g} at step {top}; it should reach the configured {peak:g} at "
            f"step {warmup_steps}, right after the warm-up (SequentialLR's milestones=[{warmup_steps}])."
        )
        return problems
    flat = 0
    while top + flat + 1 < len(rates) and math.isclose(rates[top + flat + 1], peak, rel_tol=1e-6):
        flat += 1
    if flat:
        problems.append(
            f"The rate stays at its peak for {flat} more step(s) after step {warmup_steps}: the cosine must start "
            f"right where the warm-up ends (SequentialLR's milestones=[{warmup_steps}], LinearLR's total_iters={warmup_steps})."
        )
        return problems
    warm = rates[:warmup_steps]
    steps = [b - a for a, b in zip(warm, warm[1:] + [peak])]
    if warmup_steps and (warm[0] >= peak or any(d <= 0 for d in steps) or max(steps) - min(steps) > 1e-6 * peak):
        problems.append("The warm-up does not climb in equal steps to the peak: use LinearLR(start_factor=..., total_iters=warmup_steps).")
    span = total_steps - warmup_steps
    for j in range(span):
        want = peak * (1 + math.cos(math.pi * j / span)) / 2
        if abs(rates[warmup_steps + j] - want) > 1e-3 * peak:
            problems.append(
                f"{j} steps after the warm-up the rate is {rates[warmup_steps + j]:.3g}, a cosine from {peak:g} to 0 "
                f"over the remaining {span} steps gives {want:.3g}: CosineAnnealingLR(T_max={span})."
            )
            break
    return problems


@register_checker
def warmup_cosine_scheduler(scheduler: Any, optimizer: Any, warmup_steps: int, total_steps: int) -> Feedback:
    """torch's own ``SequentialLR([LinearLR, CosineAnnealingLR])``: a linear warm-up over
    ``warmup_steps`` optimizer steps up to each group's configured rate, then a cosine to zero
    over the rest of ``total_steps``. The rates are read by stepping the scheduler (and then
    giving it back as it was), so any correct construction passes."""
    if not (is_int(warmup_steps) and is_int(total_steps) and 0 <= warmup_steps < total_steps):
        raise InvalidParameterError(
            f"warmup_cosine_scheduler needs 0 <= warmup_steps < total_steps, got {warmup_steps!r}, {total_steps!r}."
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        return Feedback(False, f"Pass the optimizer too (optimizer=...), got a {type(optimizer).__name__}.")
    if not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
        return Feedback(False, f"Expected a torch.optim.lr_scheduler scheduler, got a {type(scheduler).__name__}.")
    if scheduler.optimizer is not optimizer:
        return Feedback(False, "The scheduler drives another optimizer: build it from the optimizer you train with.")
    kinds = [type(s).__name__ for s in getattr(scheduler, "_schedulers", [])]
    if type(scheduler).__name__ != "SequentialLR" or kinds != ["LinearLR", "CosineAnnealingLR"]:
        got = f"{type(scheduler).__name__}({', '.join(kinds)})" if kinds else type(scheduler).__name__
        return Feedback(False, f"Build it from torch's own pieces: SequentialLR([LinearLR, CosineAnnealingLR]); got {got}.")
    if scheduler.last_epoch != 0:
        return Feedback(False, f"The scheduler has already been stepped {scheduler.last_epoch} times: build a fresh one.")
    rates = _scheduled_rates(scheduler, optimizer, total_steps)
    problems: list[str] = []
    for gi, group in enumerate(optimizer.param_groups):
        for p in _schedule_problems([r[gi] for r in rates], configured_lr(group), warmup_steps, total_steps):
            problems.append(f"group {gi}: {p}" if len(optimizer.param_groups) > 1 else p)
    if problems:
        return fail(problems)
    return Feedback(
        True,
        f"Warm-up over {warmup_steps} steps to each group's rate, then a cosine to zero over {total_steps - warmup_steps} "
        f"steps, in all {plural(len(optimizer.param_groups), 'group')}.",
    )


__all__ = ["discriminative_lrs", "layer_decay_lrs", "lr_from_sweep", "warmup_cosine_scheduler"]
