"""Discriminative learning rates: one learning rate per stage, and the two-phase recipe.

Lower stages of a pretrained network hold generic features (edges, textures) that transfer
almost as they are; upper stages hold ImageNet-specific ones; the new head is random. So when
fine-tuning, each stage gets its own learning rate: large for the head, smaller going down.
:func:`stage_param_groups` builds the ``param_groups`` list that every ``torch.optim`` optimizer
accepts, either from explicit rates per stage or by layer-wise decay (the head gets ``lr``, the
stage below ``lr * decay``, then ``lr * decay**2``, ...), the habit of timm's
``param_groups_layer_decay`` and of BEiT/ULMFiT fine-tuning.

:class:`TwoPhasePlan` packages the usual recipe: train the head on a frozen backbone, then
unfreeze the top stages and fine-tune everything trainable at small rates with a warm-up, with
a new optimizer built *after* unfreezing so no unfrozen tensor is left out of it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ..errors import CourseError, InvalidParameterError, unknown_name
from ..models.backbones import stage_names, stage_of_parameters
from ..models.freezing import _optimizer_groups, trainable_stages
from ..models.freezing import unfreeze_top as _unfreeze_top


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidParameterError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def _no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases and normalisation weights: 1-D tensors (timm's rule, plus any ``.bias``).

    Weight decay pulls weights towards zero; for a BatchNorm scale or a bias that is a pull
    towards a different function, not towards a simpler one, so they are usually exempt.
    """
    return param.ndim <= 1 or name.endswith(".bias")


def stage_param_groups(
    model: nn.Module,
    lrs: Mapping[str, float] | None = None,
    *,
    lr: float | None = None,
    decay: float | None = None,
    weight_decay: float = 0.0,
    no_weight_decay_for_norm_and_bias: bool = True,
) -> list[dict[str, Any]]:
    """Optimizer param groups with one learning rate per stage, for the trainable parameters.

    Give either ``lrs`` (stage name -> learning rate, for every trainable stage) or ``lr``
    with an optional ``decay`` in (0, 1]: the topmost trainable stage (normally the head) gets
    ``lr``, the next trainable stage below ``lr * decay``, then ``lr * decay**2``, ... (depth is
    counted over trainable stages only, in stage order; ``decay=None`` means one rate for all).

    Every trainable parameter lands in exactly one group and frozen ones in none, so unfreeze
    first, then call this. Each group carries ``params``, ``lr``, ``weight_decay``, and the
    metadata ``stage`` and ``param_names`` (torch optimizers keep both; ``param_names`` is
    torch's own key for the names of ``params``). With ``weight_decay > 0`` and
    ``no_weight_decay_for_norm_and_bias``, a stage's biases and norm weights go to a second
    group with ``weight_decay = 0``. Empty groups are left out.
    """
    if lrs is not None and (lr is not None or decay is not None):
        raise InvalidParameterError(
            "Give either lrs={stage: lr, ...} or lr=... (with an optional decay=...), not both."
        )
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not (
        math.isfinite(weight_decay) and weight_decay >= 0
    ):
        raise InvalidParameterError(f"weight_decay must be a number >= 0, got {weight_decay!r}.")

    names = stage_names(model)
    live = trainable_stages(model)
    if not live:
        raise CourseError(
            "The model has no trainable parameters, so there is nothing to optimise. Unfreeze "
            "at least the head first: tlcourse.models.freezing.unfreeze_top(model, 0)."
        )

    if lrs is not None:
        if not isinstance(lrs, Mapping):
            raise InvalidParameterError(f"lrs must be a dict stage -> learning rate, got {lrs!r}.")
        for stage, value in lrs.items():
            if stage not in names:
                raise unknown_name("stage", str(stage), names)
            _positive_number(f"lrs[{stage!r}]", value)
        frozen_listed = [s for s in lrs if s not in live]
        if frozen_listed:
            raise CourseError(
                f"lrs gives a learning rate to frozen stage(s) {', '.join(frozen_listed)}, which "
                "would not train at all. Unfreeze them first (unfreeze(model, [...]) or "
                "unfreeze_top(model, k)) or leave them out of lrs. Trainable stages: "
                f"{', '.join(live)}."
            )
        unlisted = [s for s in live if s not in lrs]
        if unlisted:
            raise CourseError(
                f"Trainable stage(s) {', '.join(unlisted)} have no learning rate in lrs. Add "
                "them to lrs, or freeze them (freeze(model, [...])) if they should not train."
            )
        stage_lr = {s: float(lrs[s]) for s in live}
    else:
        if lr is None:
            raise InvalidParameterError(
                "Give lrs={stage: lr, ...} or lr=... (the head's rate, with an optional decay)."
            )
        top_lr = _positive_number("lr", lr)
        factor = 1.0
        if decay is not None:
            factor = _positive_number("decay", decay)
            if factor > 1:
                raise InvalidParameterError(
                    f"decay must be in (0, 1] (lower stages get smaller rates), got {decay!r}."
                )
        stage_lr = {s: top_lr * factor**depth for depth, s in enumerate(reversed(live))}

    split = weight_decay > 0 and no_weight_decay_for_norm_and_bias
    buckets: dict[tuple[str, bool], list[tuple[str, nn.Parameter]]] = {}
    owner = stage_of_parameters(model)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = split and _no_decay(name, param)
        buckets.setdefault((owner[name], exempt), []).append((name, param))

    groups: list[dict[str, Any]] = []
    for stage in names:
        for exempt in (False, True):
            members = buckets.get((stage, exempt))
            if not members:
                continue
            groups.append({
                "params": [p for _, p in members],
                "lr": stage_lr[stage],
                "weight_decay": 0.0 if exempt else float(weight_decay),
                "stage": stage,
                "param_names": [n for n, _ in members],
            })
    return groups


def lr_table(optimizer_or_groups: Any) -> pd.DataFrame:
    """One row per param group: stage, current lr, weight decay, tensors and values in it.

    Works on a torch optimizer (showing the learning rates *now*, after any scheduler steps,
    plus ``initial_lr`` once a scheduler is attached) or on the list from
    :func:`stage_param_groups`. Groups without a ``stage`` key are named ``group <i>``.
    """
    rows = []
    groups = _optimizer_groups(optimizer_or_groups)
    for i, group in enumerate(groups):
        params = group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        row: dict[str, Any] = {
            "stage": group.get("stage", f"group {i}"),
            "lr": group.get("lr", math.nan),
            "weight_decay": group.get("weight_decay", math.nan),
            "tensors": len(params),
            "parameters": sum(p.numel() for p in params),
        }
        if any("initial_lr" in g for g in groups):
            row["initial_lr"] = group.get("initial_lr", math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


class WarmupCosine:
    """The factor of a linear warm-up followed by a cosine decay, for ``LambdaLR``.

    Step ``k`` (0-based, one per optimizer step) gets ``(k + 1) / warmup_steps`` during the
    warm-up, so the first step already moves the weights and the full rate is reached at the
    last warm-up step. Then the factor follows half a cosine from 1 down towards ``min_factor``,
    which it reaches at ``total_steps`` (the last step is just above it); beyond that it stays
    at ``min_factor``. A class rather than a lambda so that the scheduler's ``state_dict``
    saves it.
    """

    def __init__(self, total_steps: int, warmup_steps: int, min_factor: float = 0.0) -> None:
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.min_factor = min_factor

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = self.total_steps - self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    def __repr__(self) -> str:
        return (
            f"WarmupCosine(total_steps={self.total_steps}, warmup_steps={self.warmup_steps}, "
            f"min_factor={self.min_factor})"
        )


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_factor: float = 0.0
) -> LambdaLR:
    """A per-step ``LambdaLR``: linear warm-up over ``warmup_steps``, then cosine to ``min_factor``.

    Call ``scheduler.step()`` after every ``optimizer.step()`` (``fit`` does). The warm-up lets
    Adam's moment estimates settle before full-size updates reach pretrained weights; the
    cosine tail lets the last epochs refine rather than jump. Factors multiply each group's own
    rate, so discriminative rates keep their ratios throughout.
    """
    total_steps = _count("total_steps", total_steps, 1)
    warmup_steps = _count("warmup_steps", warmup_steps, 0)
    if warmup_steps >= total_steps:
        raise InvalidParameterError(
            f"warmup_steps ({warmup_steps}) must be smaller than total_steps ({total_steps}), "
            "leaving steps for the cosine decay."
        )
    if isinstance(min_factor, bool) or not isinstance(min_factor, (int, float)) or not 0 <= min_factor <= 1:
        raise InvalidParameterError(f"min_factor must be a number in [0, 1], got {min_factor!r}.")
    return LambdaLR(optimizer, WarmupCosine(total_steps, warmup_steps, float(min_factor)))


@dataclass(frozen=True)
class TwoPhasePlan:
    """Head first on a frozen backbone, then fine-tune the top stages: the standard recipe.

    Phase 1 (:meth:`phase1`): every stage but the head frozen, AdamW on the head at
    ``head_lr``, cosine decay over ``head_epochs`` with no warm-up (the backbone cannot be
    damaged, so there is nothing to protect). Phase 2 (:meth:`phase2`): the top
    ``unfreeze_top`` stages unfrozen, a NEW AdamW built after unfreezing, the head at
    ``finetune_head_lr`` (default ``head_lr / 10``: it is already trained and now has to
    follow a moving backbone), the unfrozen stages at ``base_lr`` (or, with ``decay``, the top
    one at ``base_lr`` and each lower one ``decay`` times the one above), linear warm-up over
    ``warmup_fraction`` of the phase, then cosine. Both schedulers step once per batch.
    """

    head_epochs: int
    finetune_epochs: int
    head_lr: float = 1e-3
    base_lr: float = 1e-4
    unfreeze_top: int = 2
    decay: float | None = None
    warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    finetune_head_lr: float | None = None
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        _count("head_epochs", self.head_epochs, 0)
        _count("finetune_epochs", self.finetune_epochs, 0)
        if self.head_epochs + self.finetune_epochs == 0:
            raise InvalidParameterError("A TwoPhasePlan needs head_epochs or finetune_epochs > 0.")
        _positive_number("head_lr", self.head_lr)
        _positive_number("base_lr", self.base_lr)
        if self.finetune_head_lr is not None:
            _positive_number("finetune_head_lr", self.finetune_head_lr)
        _count("unfreeze_top", self.unfreeze_top, 0)
        if self.decay is not None and not 0 < _positive_number("decay", self.decay) <= 1:
            raise InvalidParameterError(f"decay must be in (0, 1], got {self.decay!r}.")
        wf = self.warmup_fraction
        if isinstance(wf, bool) or not isinstance(wf, (int, float)) or not 0 <= wf < 1:
            raise InvalidParameterError(f"warmup_fraction must be in [0, 1), got {wf!r}.")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise InvalidParameterError(f"weight_decay must be >= 0, got {self.weight_decay!r}.")
        if not 0 <= self.min_factor <= 1:
            raise InvalidParameterError(f"min_factor must be in [0, 1], got {self.min_factor!r}.")

    @property
    def total_epochs(self) -> int:
        return self.head_epochs + self.finetune_epochs

    def _steps(self, phase: str, epochs: int, steps_per_epoch: int) -> int:
        _count("steps_per_epoch", steps_per_epoch, 1)
        if epochs == 0:
            raise CourseError(
                f"This plan has 0 epochs for {phase}; skip that phase (or give it epochs)."
            )
        return epochs * steps_per_epoch

    def phase1(
        self, model: nn.Module, steps_per_epoch: int
    ) -> tuple[torch.optim.Optimizer, LambdaLR]:
        """Freeze all but the head; return (AdamW on the head, per-step cosine schedule)."""
        total = self._steps("phase 1 (head_epochs)", self.head_epochs, steps_per_epoch)
        _unfreeze_top(model, 0)
        groups = stage_param_groups(model, {"head": self.head_lr}, weight_decay=self.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=self.head_lr)
        return optimizer, warmup_cosine(optimizer, total, 0, self.min_factor)

    def phase2_lrs(self, model: nn.Module) -> dict[str, float]:
        """The learning rate of each stage phase 2 trains (head last), to show before running."""
        body = [s for s in stage_names(model) if s != "head"]
        if self.unfreeze_top > len(body):
            raise InvalidParameterError(
                f"unfreeze_top={self.unfreeze_top} but this model has {len(body)} stages below "
                f"the head ({', '.join(body)}); use 0 to {len(body)}."
            )
        unfrozen = body[len(body) - self.unfreeze_top :]
        factor = 1.0 if self.decay is None else self.decay
        lrs = {s: self.base_lr * factor**depth for depth, s in enumerate(reversed(unfrozen))}
        ordered = {s: lrs[s] for s in unfrozen}
        ordered["head"] = self.finetune_head_lr if self.finetune_head_lr is not None else self.head_lr / 10
        return ordered

    def phase2(
        self, model: nn.Module, steps_per_epoch: int
    ) -> tuple[torch.optim.Optimizer, LambdaLR]:
        """Unfreeze the top stages, then build a new AdamW and a warm-up + cosine schedule."""
        total = self._steps("phase 2 (finetune_epochs)", self.finetune_epochs, steps_per_epoch)
        lrs = self.phase2_lrs(model)
        _unfreeze_top(model, self.unfreeze_top)
        groups = stage_param_groups(model, lrs, weight_decay=self.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=lrs["head"])
        warmup = min(int(round(self.warmup_fraction * total)), total - 1)
        return optimizer, warmup_cosine(optimizer, total, warmup, self.min_factor)


__all__ = [
    "TwoPhasePlan",
    "WarmupCosine",
    "lr_table",
    "stage_param_groups",
    "warmup_cosine",
]
