"""Learning-rate schedules: warm-up then cosine, per optimizer step, and the two-phase recipe.

:func:`warmup_cosine` is the per-step schedule fine-tuning uses (``fit`` steps a scheduler after
every optimizer step). :class:`TwoPhasePlan` packages the usual recipe: train the head on a
frozen backbone, then unfreeze the top stages and fine-tune everything trainable at small
rates with a warm-up, with a new optimizer built *after* unfreezing so no unfrozen tensor is
left out of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ..errors import CourseError, InvalidParameterError
from ..models.backbones import stage_names
from ..models.freezing import unfreeze_top as _unfreeze_top
from .._checks import int_at_least, positive_number
from .param_groups import stage_param_groups


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


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_factor: float = 0.0
) -> LambdaLR:
    """A per-step ``LambdaLR``: linear warm-up over ``warmup_steps``, then cosine to ``min_factor``.

    Call ``scheduler.step()`` after every ``optimizer.step()`` (``fit`` does). The warm-up lets
    Adam's moment estimates settle before full-size updates reach pretrained weights; the
    cosine tail lets the last epochs refine rather than jump. Factors multiply each group's own
    rate, so discriminative rates keep their ratios throughout.
    """
    total_steps = int_at_least(total_steps, "total_steps", 1)
    warmup_steps = int_at_least(warmup_steps, "warmup_steps", 0)
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
        int_at_least(self.head_epochs, "head_epochs", 0)
        int_at_least(self.finetune_epochs, "finetune_epochs", 0)
        if self.head_epochs + self.finetune_epochs == 0:
            raise InvalidParameterError("A TwoPhasePlan needs head_epochs or finetune_epochs > 0.")
        positive_number(self.head_lr, "head_lr")
        positive_number(self.base_lr, "base_lr")
        if self.finetune_head_lr is not None:
            positive_number(self.finetune_head_lr, "finetune_head_lr")
        int_at_least(self.unfreeze_top, "unfreeze_top", 0)
        if self.decay is not None and not 0 < positive_number(self.decay, "decay") <= 1:
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
        int_at_least(steps_per_epoch, "steps_per_epoch", 1)
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


__all__ = ["TwoPhasePlan", "WarmupCosine", "warmup_cosine"]
