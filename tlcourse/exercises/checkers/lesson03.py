"""Checkers for lesson 03 (freezing): a frozen backbone, the optimizer that goes with it,
BatchNorm layers that must stay in eval mode while the rest trains, and the "find the bug"
exercise: an optimizer built from named layer groups that forgets the layers in no group."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from ..feedback import Feedback
from .common import (
    as_model,
    configured_lr,
    coverage_problems,
    fail,
    names,
    optimizer_coverage,
    param_names,
    plural,
    trainable_problems,
    trainable_summary,
)
from .registry import register_checker


@register_checker
def frozen_except_head(model: nn.Module) -> Feedback:
    """Only the classification head trains; every backbone stage is frozen."""
    m = as_model(model)
    if isinstance(m, Feedback):
        return m
    problems = trainable_problems(m, ["head"])
    if problems:
        return fail(problems)
    return Feedback(True, f"Only the head is trainable: {trainable_summary(m)}.")


@register_checker
def optimizer_covers_trainable(model: nn.Module, optimizer: Any, allow_frozen: bool = False) -> Feedback:
    """The optimizer updates every trainable parameter, once, and (by default) nothing frozen."""
    return optimizer_coverage(model, optimizer, allow_frozen)


@register_checker
def bn_eval_in_frozen_stages(model: nn.Module) -> Feedback:
    """BatchNorm layers whose weights are frozen are in eval mode while the model trains.

    A frozen BatchNorm in training mode still updates its running mean and variance from
    every batch, so the "frozen" backbone drifts towards the new data's statistics (and a
    batch of 8 gives noisy ones). The fix: ``model.train()`` then ``.eval()`` on those layers.
    """
    from ...models import stage_modules

    m = as_model(model)
    if isinstance(m, Feedback):
        return m
    if not m.training:
        return Feedback(
            False,
            "The model is in eval mode (model.training is False), so this says nothing about "
            "training: call model.train() first, then put the frozen stages' BatchNorm layers "
            "back into eval mode.",
        )
    module_names = {id(mod): name for name, mod in m.named_modules()}
    wrong: OrderedDict[str, list[str]] = OrderedDict()
    frozen_count: OrderedDict[str, int] = OrderedDict()
    trainable_bn = 0
    for stage, modules in stage_modules(m).items():
        for top in modules:
            for sub in top.modules():
                if not isinstance(sub, nn.modules.batchnorm._BatchNorm):
                    continue
                params = list(sub.parameters(recurse=False))
                if params:
                    frozen = not any(p.requires_grad for p in params)
                else:  # affine=False: frozen when its whole stage is frozen
                    frozen = not any(p.requires_grad for t in modules for p in t.parameters())
                if not frozen:
                    trainable_bn += 1
                    continue
                frozen_count[stage] = frozen_count.get(stage, 0) + 1
                if sub.training:
                    wrong.setdefault(stage, []).append(module_names.get(id(sub), "?"))
    if not frozen_count:
        return Feedback(
            False,
            "No BatchNorm layer is frozen, so there is nothing to keep in eval mode: freeze the "
            "backbone stages first (requires_grad=False).",
        )
    if wrong:
        problems = [
            f"{stage} is frozen but {len(layers)} of its {frozen_count[stage]} BatchNorm layers "
            f"are in training mode ({names(layers, 3)}): their running statistics will drift."
            for stage, layers in wrong.items()
        ]
        problems.append("Call .eval() on the frozen stages' BatchNorm layers after every model.train().")
        return fail(problems)
    n = sum(frozen_count.values())
    return Feedback(
        True,
        f"All {n} BatchNorm layers in frozen stages ({', '.join(frozen_count)}) are in eval mode; "
        f"{plural(trainable_bn, 'trainable BatchNorm layer')} can adapt.",
    )


def _top_module(name: str) -> str:
    return name.split(".", 1)[0]


@register_checker
def layer_groups_fixed(model: nn.Module, optimizer: Any, lrs: dict[str, float], rel_tol: float = 1e-6) -> Feedback:
    """The ResNet "find the bug" fix: every trainable tensor is in the optimizer (or frozen), and
    the named layers keep their rates (``lrs``: top-level module name -> rate, e.g. ``fc: 1e-3``).

    The buggy script freezes ``layer1``/``layer2`` by name and builds its param groups from
    ``layer3``, ``layer4`` and ``fc`` only, so ``conv1``/``bn1`` get gradients and are never
    stepped. Two fixes are right: freeze them too, or give them a group (at a rate no higher
    than the lowest backbone rate: earlier layers move least).
    """
    m = as_model(model)
    if isinstance(m, Feedback):
        return m
    problems = coverage_problems(m, optimizer, allow_frozen=False)
    if not isinstance(optimizer, torch.optim.Optimizer):
        return fail(problems)
    by_id = param_names(m)
    rate_of = {by_id[id(p)]: configured_lr(g) for g in optimizer.param_groups for p in g["params"] if id(p) in by_id}
    for layer, lr in lrs.items():
        wrong = sorted({rate_of[n] for n in rate_of if _top_module(n) == layer and not math.isclose(rate_of[n], lr, rel_tol=rel_tol)})
        if wrong:
            problems.append(f"{layer} trains at {', '.join(f'{r:g}' for r in wrong)}; the script gives it {lr:g}. Keep the named groups as they were.")
    backbone_rates = [lr for layer, lr in lrs.items() if layer != "fc"]
    floor = min(backbone_rates) if backbone_rates else min(lrs.values())
    extra = sorted({_top_module(n) for n in rate_of if _top_module(n) not in lrs and rate_of[n] > floor * (1 + rel_tol)})
    if extra:
        problems.append(
            f"{', '.join(extra)} now train faster than the pretrained layers above them ({floor:g}): the "
            "earliest layers hold the most general features and should move least (or be frozen)."
        )
    if problems:
        return fail(problems)
    stem = sorted({_top_module(n) for n, p in m.named_parameters() if _top_module(n) not in lrs})
    trained = [s for s in stem if any(p.requires_grad for n, p in m.named_parameters() if _top_module(n) == s)]
    how = f"{', '.join(trained)} now in a group of their own" if trained else f"{', '.join(stem)} frozen"
    return Feedback(True, f"Every trainable tensor is updated ({how}); {', '.join(lrs)} keep their rates.")


__all__ = ["bn_eval_in_frozen_stages", "frozen_except_head", "layer_groups_fixed", "optimizer_covers_trainable"]
