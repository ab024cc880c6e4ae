"""Freezing and unfreezing by stage, the freeze audit, and detectors for the classic traps.

In plain PyTorch, freezing is one line: ``for p in model.parameters(): p.requires_grad = False``.
The lessons keep writing that line. This module does the bookkeeping around it, stage by stage
(the stages of :func:`tlcourse.models.stage_names`), and checks the things that line does *not*
do, which are where fine-tuning silently goes wrong:

1. ``requires_grad = False`` does not stop BatchNorm. In ``model.train()`` mode every forward
   pass still updates ``running_mean`` / ``running_var``, so a "frozen" backbone drifts towards
   the statistics of your small batches. :func:`tlcourse.models.modes.keep_frozen_bn_in_eval`
   fixes it (the course's ``fit`` calls it every epoch).
2. An optimizer only updates the tensors it was given. Build it, then unfreeze a stage, and the
   newly trainable weights get gradients but are never stepped.
3. A frozen tensor that is in the optimizer is skipped while its ``.grad`` is ``None``; but if
   it carries a ``.grad`` tensor (``zero_grad(set_to_none=False)``, gradients left from before
   freezing), weight decay and momentum keep moving it.

:func:`freeze_audit` shows the state of each stage as a table; :func:`find_freezing_traps`
returns the traps it finds, each with what to do; :func:`check_freezing` raises on them.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import torch
from torch import nn

from .._checks import int_in_range
from ..errors import CourseError, InvalidParameterError, unknown_name
from .backbones import stage_modules, stage_names, stage_of_parameters
from .modes import BN_TYPES, is_frozen_bn

Reference = Mapping[str, torch.Tensor]


# ----------------------------------------------------------------------------- freezing


def _resolve_stages(model: nn.Module, stages: str | Iterable[str]) -> list[str]:
    """Validate stage names against the model's stages; return them in forward order."""
    valid = stage_names(model)
    if isinstance(stages, str):
        stages = [stages]
    try:
        wanted = list(stages)
    except TypeError:
        raise InvalidParameterError(
            f"stages must be a stage name or a list of stage names, got {stages!r}. "
            f"Stages of this model: {', '.join(valid)}."
        ) from None
    for name in wanted:
        if not isinstance(name, str) or name not in valid:
            raise unknown_name("stage", str(name), valid)
    return [s for s in valid if s in set(wanted)]


def _set_trainable(model: nn.Module, stages: Sequence[str], flag: bool) -> None:
    chosen = set(stages)
    owner = stage_of_parameters(model)
    for name, param in model.named_parameters():
        if owner[name] in chosen:
            param.requires_grad_(flag)


def freeze(model: nn.Module, stages: str | Iterable[str] | None = None) -> list[str]:
    """Set ``requires_grad = False`` on the parameters of ``stages``; return the stages frozen.

    ``stages=None`` freezes every stage but the head (feature extraction: only the new head
    learns); the head is left as it was. Only ``requires_grad`` changes: BatchNorm layers keep
    updating their running statistics in train mode (see
    :func:`tlcourse.models.modes.keep_frozen_bn_in_eval`).
    """
    if stages is None:
        chosen = [s for s in stage_names(model) if s != "head"]
    else:
        chosen = _resolve_stages(model, stages)
    _set_trainable(model, chosen, False)
    return chosen


def unfreeze(model: nn.Module, stages: str | Iterable[str] | None = None) -> list[str]:
    """Set ``requires_grad = True`` on the parameters of ``stages`` (``None``: all of them).

    Returns the stages unfrozen. An optimizer built before this call does not know the newly
    trainable tensors: build a new one (or ``add_param_group``) afterwards.
    """
    chosen = stage_names(model) if stages is None else _resolve_stages(model, stages)
    _set_trainable(model, chosen, True)
    return chosen


def unfreeze_top(model: nn.Module, k: int) -> list[str]:
    """Make the head and the top ``k`` stages below it trainable, and freeze everything else.

    ``k=0`` is feature extraction (head only); ``k=len(stage_names(model)) - 1`` is full
    fine-tuning. The upper stages hold the most task-specific features, so they are the first
    to unfreeze when a new domain needs the backbone to adapt. Returns the trainable stages.
    """
    names = stage_names(model)
    body = [s for s in names if s != "head"]
    k = int_in_range(
        k, "k", 0, len(body), where="unfreeze_top(model, k)",
        hint=f"k=0 trains the head only, k={len(body)} every stage. Stages below the head: {', '.join(body)}.",
    )
    keep = body[len(body) - k :] + ["head"]
    _set_trainable(model, [s for s in names if s not in keep], False)
    _set_trainable(model, keep, True)
    return trainable_stages(model)


def trainable_stages(model: nn.Module) -> list[str]:
    """Stages with at least one trainable parameter, in forward order (partial ones included)."""
    owner = stage_of_parameters(model)
    live = {owner[n] for n, p in model.named_parameters() if p.requires_grad}
    return [s for s in stage_names(model) if s in live]


# ----------------------------------------------------------------------------- snapshots


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of every parameter and BatchNorm buffer, keyed by name.

    Take one before training and pass it as ``reference`` to :func:`freeze_audit` or
    :func:`find_freezing_traps` afterwards: they compare it with the model to show whether
    frozen weights or frozen running statistics moved.
    """
    out: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        out[name] = param.detach().to("cpu", copy=True)
    for mod_name, module in model.named_modules():
        if isinstance(module, BN_TYPES):
            for buf_name, buf in module.named_buffers(recurse=False):
                if buf is not None:
                    key = f"{mod_name}.{buf_name}" if mod_name else buf_name
                    out[key] = buf.detach().to("cpu", copy=True)
    return out


def _reference_tensor(reference: Reference, key: str) -> torch.Tensor:
    if key not in reference:
        raise CourseError(
            f"The reference snapshot has no entry {key!r}: it was taken from a different model "
            "(or is not a tlcourse snapshot). Take reference = snapshot(model) of this same "
            "model before training."
        )
    return reference[key]


def _max_abs_change(current: torch.Tensor, key: str, reference: Reference) -> float:
    old = _reference_tensor(reference, key)
    new = current.detach().to("cpu")
    if old.shape != new.shape:
        raise CourseError(
            f"The reference snapshot's {key!r} has shape {tuple(old.shape)}, the model's has "
            f"{tuple(new.shape)}: the snapshot is from another model. Take snapshot(model) again."
        )
    if new.numel() == 0:
        return 0.0
    return float((new.double() - old.double()).abs().max())


def _bn_drift(module: nn.Module, mod_name: str, reference: Reference) -> float:
    """Largest relative change of a BatchNorm layer's running mean/var since the snapshot.

    Relative to the largest stored value of each tensor, so channels whose statistic is near
    zero do not blow the number up. ``num_batches_tracked`` moving also counts as drift (it
    only moves when a train-mode forward pass updated the statistics); it is reported as at
    least a tiny positive value so that "drifted" never reads as 0.
    """
    drift = 0.0
    for stat in ("running_mean", "running_var"):
        buf = getattr(module, stat, None)
        if buf is None:
            continue
        key = f"{mod_name}.{stat}"
        change = _max_abs_change(buf, key, reference)
        scale = float(_reference_tensor(reference, key).double().abs().max()) if buf.numel() else 0.0
        drift = max(drift, change / max(scale, 1e-12))
    counter = getattr(module, "num_batches_tracked", None)
    key = f"{mod_name}.num_batches_tracked"
    if counter is not None and key in reference and int(counter) != int(reference[key]):
        drift = max(drift, 1e-12)
    return drift


# ----------------------------------------------------------------------------- inspection


def _optimizer_groups(optimizer: Any) -> list[Mapping[str, Any]]:
    """The param groups of a torch optimizer, or a list of param-group dicts as given."""
    groups = getattr(optimizer, "param_groups", optimizer)
    if isinstance(groups, Sequence) and all(isinstance(g, Mapping) and "params" in g for g in groups):
        return list(groups)
    raise InvalidParameterError(
        f"optimizer must be a torch.optim.Optimizer or a list of param-group dicts (each with "
        f"'params'), got {type(optimizer).__name__}."
    )


def _optimizer_param_ids(optimizer: Any) -> set[int]:
    ids: set[int] = set()
    for group in _optimizer_groups(optimizer):
        params = group["params"]
        if isinstance(params, torch.Tensor):
            params = [params]
        ids.update(id(p) for p in params)
    return ids


@dataclass
class _StageState:
    params: list[tuple[str, nn.Parameter]]
    bns: list[tuple[str, nn.Module]]


def _stage_states(model: nn.Module) -> dict[str, _StageState]:
    names = stage_names(model)
    states = {s: _StageState([], []) for s in names}
    owner = stage_of_parameters(model)
    for name, param in model.named_parameters():
        states[owner[name]].params.append((name, param))
    qualified = {id(m): n for n, m in model.named_modules()}
    for stage, modules in stage_modules(model).items():
        seen: set[int] = set()
        for top in modules:
            for module in top.modules():
                if isinstance(module, BN_TYPES) and id(module) not in seen:
                    seen.add(id(module))
                    states[stage].bns.append((qualified[id(module)], module))
    return states


def _status(total: int, trainable: int) -> str:
    if trainable == 0:
        return "frozen"
    return "trainable" if trainable == total else "partial"


def freeze_audit(
    model: nn.Module, optimizer: Any = None, reference: Reference | None = None
) -> pd.DataFrame:
    """One row per stage: what is frozen, what BatchNorm is doing, what the optimizer sees.

    Columns (counts of parameter *values*, not tensors):

    - ``parameters``, ``trainable``, ``status`` (frozen / trainable / partial);
    - ``bn_layers``: BatchNorm layers in the stage; ``bn_train``: how many are in train mode
      (in a frozen stage those update their running statistics: trap 1);
    - with ``reference`` (a :func:`snapshot`): ``frozen_max_change``, the largest absolute
      change of a frozen weight (should be exactly 0), and ``bn_drift``, the largest relative
      change of a BatchNorm running mean/var (expected in trainable stages, a trap in frozen
      ones). NaN where the stage has nothing to compare;
    - with ``optimizer`` (a torch optimizer or a list of param groups):
      ``missing_from_optimizer``, trainable values the optimizer will never update (trap 2),
      and ``frozen_in_optimizer``, frozen values it carries.
    """
    ids = _optimizer_param_ids(optimizer) if optimizer is not None else None
    rows = []
    for stage, state in _stage_states(model).items():
        total = sum(p.numel() for _, p in state.params)
        trainable = sum(p.numel() for _, p in state.params if p.requires_grad)
        row: dict[str, Any] = {
            "stage": stage,
            "status": _status(total, trainable),
            "parameters": total,
            "trainable": trainable,
            "bn_layers": len(state.bns),
            "bn_train": sum(1 for _, m in state.bns if m.training),
        }
        if reference is not None:
            frozen = [(n, p) for n, p in state.params if not p.requires_grad]
            row["frozen_max_change"] = (
                max(_max_abs_change(p, n, reference) for n, p in frozen) if frozen else math.nan
            )
            drifts = [_bn_drift(m, n, reference) for n, m in state.bns]
            row["bn_drift"] = max(drifts) if drifts else math.nan
        if ids is not None:
            row["missing_from_optimizer"] = sum(
                p.numel() for _, p in state.params if p.requires_grad and id(p) not in ids
            )
            row["frozen_in_optimizer"] = sum(
                p.numel() for _, p in state.params if not p.requires_grad and id(p) in ids
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("stage")


@dataclass(frozen=True)
class Trap:
    """One freezing problem found in a model (and its optimizer), with what to do about it.

    ``kind`` is one of ``bn_train_in_frozen``, ``bn_stats_drifted``, ``not_in_optimizer``,
    ``frozen_in_optimizer``, ``frozen_weights_changed``, ``nothing_trainable``. ``severity``
    is ``"error"`` (training is not doing what you think) or ``"warning"`` (works, wasteful).
    """

    kind: str
    stage: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"[{self.severity}: {self.kind}] {self.stage}: {self.message}"


class FreezingError(CourseError):
    """Raised by :func:`check_freezing`; ``.traps`` holds what was found."""

    def __init__(self, traps: Sequence[Trap]) -> None:
        self.traps = list(traps)
        lines = "\n".join(f"- {t}" for t in self.traps)
        super().__init__(f"{len(self.traps)} freezing problem(s) found:\n{lines}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


#: What a moved frozen tensor means and what to do; {count} is e.g. "3 frozen BatchNorm layers".
_MOVED_MESSAGES = {
    "bn_stats_drifted": (
        "running statistics of {count} changed since the snapshot (largest relative change "
        "{change:.3g}, in {worst}): they were updated in train mode. Use "
        "keep_frozen_bn_in_eval(model) after model.train(), or train with "
        "fit(freeze_bn=True); reload the pretrained weights to undo the drift."
    ),
    "frozen_weights_changed": (
        "{count} changed since the snapshot (largest change {change:.3g}, in {worst}). Frozen "
        "tensors that carry a .grad tensor are still moved by weight decay and momentum: "
        "build the optimizer from trainable parameters only and use "
        "optimizer.zero_grad(set_to_none=True). (Or the stage was frozen after the "
        "snapshot was taken while it trained.)"
    ),
}


def _moved_trap(kind: str, stage: str, what: str, changes: Iterable[tuple[str, float]]) -> list[Trap]:
    """The ``kind`` trap if any of the ``(name, change)`` pairs moved, naming the largest."""
    moved = [(name, change) for name, change in changes if change > 0]
    if not moved:
        return []
    worst, change = max(moved, key=lambda item: item[1])
    message = _MOVED_MESSAGES[kind].format(count=_plural(len(moved), what), change=change, worst=worst)
    return [Trap(kind, stage, message)]


def find_freezing_traps(
    model: nn.Module, optimizer: Any = None, reference: Reference | None = None
) -> list[Trap]:
    """The freezing traps present in ``model`` (and ``optimizer``, and since ``reference``).

    - ``bn_train_in_frozen``: frozen BatchNorm layers in train mode; the next train-mode
      forward pass will update their running statistics.
    - ``bn_stats_drifted`` (needs ``reference``): frozen BatchNorm running statistics did change.
    - ``frozen_weights_changed`` (needs ``reference``): a frozen weight is not what it was.
    - ``not_in_optimizer`` (needs ``optimizer``): trainable tensors in no param group, e.g. an
      optimizer built before unfreezing: they get gradients and are never updated.
    - ``frozen_in_optimizer`` (needs ``optimizer``): an error when those frozen tensors carry
      a ``.grad`` tensor (then weight decay / momentum move them), otherwise a warning.
    - ``nothing_trainable``: no parameter requires grad; training would change nothing.

    Returns an empty list for a correct setup.
    """
    ids = _optimizer_param_ids(optimizer) if optimizer is not None else None
    traps: list[Trap] = []
    any_trainable = False
    for stage, state in _stage_states(model).items():
        any_trainable |= any(p.requires_grad for _, p in state.params)
        frozen_bns = [(n, m) for n, m in state.bns if is_frozen_bn(m)]
        training = [n for n, m in frozen_bns if m.training]
        if training:
            traps.append(Trap(
                "bn_train_in_frozen", stage,
                f"{_plural(len(training), 'frozen BatchNorm layer')} in train mode (e.g. "
                f"{training[0]}): each train-mode forward pass updates their running mean/var "
                "although their weights are frozen, so the 'frozen' backbone drifts to your "
                "batches' statistics. Call .eval() on those BN layers after every model.train() "
                "(tlcourse.models.keep_frozen_bn_in_eval(model) does it; fit(freeze_bn=True) "
                "calls it each epoch).",
            ))
        if reference is not None:
            traps += _moved_trap("bn_stats_drifted", stage, "frozen BatchNorm layer",
                                 ((n, _bn_drift(m, n, reference)) for n, m in frozen_bns))
            traps += _moved_trap("frozen_weights_changed", stage, "frozen parameter tensor",
                                 ((n, _max_abs_change(p, n, reference)) for n, p in state.params if not p.requires_grad))
        if ids is None:
            continue
        missing = [(n, p) for n, p in state.params if p.requires_grad and id(p) not in ids]
        if missing:
            traps.append(Trap(
                "not_in_optimizer", stage,
                f"{_plural(len(missing), 'trainable tensor')} "
                f"({sum(p.numel() for _, p in missing):,} values, e.g. {missing[0][0]}) are in no "
                "optimizer param group: they get gradients but are never updated. The optimizer "
                "was probably built before this stage was unfrozen; build a new optimizer after "
                "unfreezing (tlcourse.train.stage_param_groups(model, ...)) or add them with "
                "optimizer.add_param_group(...).",
            ))
        carried = [(n, p) for n, p in state.params if not p.requires_grad and id(p) in ids]
        if carried:
            with_grad = [n for n, p in carried if p.grad is not None]
            if with_grad:
                traps.append(Trap(
                    "frozen_in_optimizer", stage,
                    f"{_plural(len(with_grad), 'frozen tensor')} in the optimizer carry a .grad "
                    f"tensor (e.g. {with_grad[0]}), so weight decay and momentum/Adam state still "
                    "change these 'frozen' weights. Call optimizer.zero_grad(set_to_none=True) "
                    "(or set p.grad = None when freezing) and build the optimizer from "
                    "[p for p in model.parameters() if p.requires_grad].",
                ))
            else:
                traps.append(Trap(
                    "frozen_in_optimizer", stage,
                    f"the optimizer carries {_plural(len(carried), 'frozen tensor')}: harmless "
                    "while their .grad stays None (the optimizer skips them), but wasteful and "
                    "fragile. Build it from [p for p in model.parameters() if p.requires_grad] "
                    "or tlcourse.train.stage_param_groups(model, ...).",
                    severity="warning",
                ))
    if not any_trainable:
        traps.append(Trap(
            "nothing_trainable", "(all)",
            "no parameter requires grad, so training changes nothing. Unfreeze at least the "
            "head: unfreeze(model, 'head') or unfreeze_top(model, 0).",
        ))
    return traps


def check_freezing(
    model: nn.Module,
    optimizer: Any = None,
    reference: Reference | None = None,
    *,
    strict: bool = False,
) -> None:
    """Raise :class:`FreezingError` (a ``CourseError``) listing the freezing traps, if any.

    Warnings (``severity="warning"``) are issued with :func:`warnings.warn` and do not raise
    unless ``strict=True``. Returns quietly for a correct setup, so a notebook can assert its
    setup in one line before training.
    """
    traps = find_freezing_traps(model, optimizer, reference)
    errors = [t for t in traps if t.severity == "error" or strict]
    for trap in traps:
        if trap not in errors:
            warnings.warn(str(trap), UserWarning, stacklevel=2)
    if errors:
        raise FreezingError(errors)


__all__ = [
    "FreezingError",
    "Trap",
    "check_freezing",
    "find_freezing_traps",
    "freeze",
    "freeze_audit",
    "snapshot",
    "trainable_stages",
    "unfreeze",
    "unfreeze_top",
]
