"""Checkers for lesson 03 (freezing): a frozen backbone, the optimizer that goes with it, and
BatchNorm layers that must stay in eval mode while the rest trains."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from torch import nn

from ..feedback import Feedback
from .common import as_model, fail, names, optimizer_coverage, plural, trainable_problems, trainable_summary
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


__all__ = ["bn_eval_in_frozen_stages", "frozen_except_head", "optimizer_covers_trainable"]
