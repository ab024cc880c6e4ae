"""Discriminative learning rates: one learning rate per stage, as optimizer param groups.

Lower stages of a pretrained network hold generic features (edges, textures) that transfer
almost as they are; upper stages hold ImageNet-specific ones; the new head is random. So when
fine-tuning, each stage gets its own learning rate: large for the head, smaller going down.
:func:`stage_param_groups` builds the ``param_groups`` list that every ``torch.optim`` optimizer
accepts, either from explicit rates per stage or by layer-wise decay (the head gets ``lr``, the
stage below ``lr * decay``, then ``lr * decay**2``, ...), the habit of timm's
``param_groups_layer_decay`` and of BEiT/ULMFiT fine-tuning. :func:`lr_table` shows what
an optimizer (or a list of groups) holds.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from .._checks import positive_number
from ..errors import CourseError, InvalidParameterError, unknown_name
from ..models.backbones import stage_names, stage_of_parameters
from ..models.freezing import _optimizer_groups, trainable_stages


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
            positive_number(value, f"lrs[{stage!r}]")
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
        top_lr = positive_number(lr, "lr")
        factor = 1.0
        if decay is not None:
            factor = positive_number(decay, "decay")
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


__all__ = ["lr_table", "stage_param_groups"]
