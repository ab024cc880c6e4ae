"""Code-exercise checkers: plain functions that inspect a learner's objects.

A question bank names a checker (``checker: frozen_except_head``) and may fix some of its
keyword arguments (``expected: {num_classes: 3}``); the notebook passes the learner's objects
(``ex.check_code("q5", model=model, optimizer=opt)``). Every checker returns a
:class:`~tlcourse.exercises.feedback.Feedback` whose message *names the mistake*: which stage
is still trainable, which tensors the optimizer misses, which group has the wrong learning
rate. A bare "wrong" teaches nothing; "stage5 (27 tensors) is still trainable" does.

Checkers never raise for a learner's mistake (a wrong object, a missing head): that is a
``Feedback(False, ...)``. They raise :class:`~tlcourse.errors.CourseError` only when the
*bank* is wrong (an unknown stage name in ``expected``), so authors find their bugs.

Add a checker by decorating a function with :func:`register_checker`; its name is the key the
banks use.
"""
from __future__ import annotations

import difflib
import functools
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import CourseError, InvalidParameterError, unknown_name
from .feedback import Feedback

CHECKERS: dict[str, Callable[..., Feedback]] = {}


def register_checker(
    fn: Callable[..., Feedback] | None = None, *, name: str | None = None
) -> Any:
    """Register ``fn`` under ``name`` (default: its ``__name__``) so banks can refer to it.

    Usable bare (``@register_checker``) or with a name (``@register_checker(name="x")``).
    """

    def add(f: Callable[..., Feedback]) -> Callable[..., Feedback]:
        key = name or f.__name__
        if key in CHECKERS and CHECKERS[key] is not f:
            raise InvalidParameterError(
                f"A checker named {key!r} is already registered ({CHECKERS[key].__module__}); "
                "pick another name."
            )
        CHECKERS[key] = f
        return f

    return add(fn) if fn is not None else add


def get_checker(name: str) -> Callable[..., Feedback]:
    """The registered checker ``name`` (a :class:`CourseError` listing the valid names if not).

    ``"package.module:function"`` names a checker that lives with a lesson's own checks; the
    module is imported on first use and the function registered under that name.
    """
    if name not in CHECKERS and isinstance(name, str) and ":" in name:
        import importlib

        module, _, attr = name.partition(":")
        try:
            CHECKERS[name] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise CourseError(f"Checker {name!r} could not be imported ({exc}). Check the module path and function name.") from exc
    if name not in CHECKERS:
        raise unknown_name("checker", name, CHECKERS)
    return CHECKERS[name]


# --------------------------------------------------------------------------- formatting helpers


def _names(names: Sequence[str], limit: int = 4) -> str:
    """``a, b, c and 5 more``: enough names to find the mistake without a wall of text."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def _count(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _fail(problems: Sequence[str]) -> Feedback:
    if len(problems) == 1:
        return Feedback(False, problems[0])
    return Feedback(False, "\n".join(f"- {p}" for p in problems))


# --------------------------------------------------------------------------- model helpers


def _attr_path(path: str) -> str:
    """``classifier.1`` -> ``classifier[1]``: how the learner writes it in Python."""
    return re.sub(r"\.(\d+)", r"[\1]", path)


def _as_model(model: Any) -> nn.Module | Feedback:
    """The model, or a Feedback explaining what was passed instead."""
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, tuple) and model and isinstance(model[0], nn.Module):
        return Feedback(
            False,
            "You passed a tuple: create_model returns (model, preprocessing). "
            "Unpack it (model, prep = create_model(...)) and pass the model.",
        )
    return Feedback(False, f"Expected a torch.nn.Module as the model, got a {type(model).__name__}.")


def _stage_params(model: nn.Module) -> "OrderedDict[str, list[tuple[str, nn.Parameter]]]":
    """Stage name -> its (name, parameter) pairs, stages in forward order, head last."""
    from ..models import stage_names, stage_of_parameters

    stage_of = stage_of_parameters(model)
    out: OrderedDict[str, list[tuple[str, nn.Parameter]]] = OrderedDict(
        (s, []) for s in stage_names(model)
    )
    for pname, param in model.named_parameters():
        out[stage_of[pname]].append((pname, param))
    return out


def _requires_grad_typos(model: nn.Module) -> list[str]:
    """Attributes like ``p.require_grad = False`` that look like ``requires_grad`` but do nothing."""
    found: dict[str, int] = {}
    for _, param in model.named_parameters():
        for attr in getattr(param, "__dict__", {}):
            if attr != "requires_grad" and difflib.SequenceMatcher(None, attr, "requires_grad").ratio() > 0.8:
                found[attr] = found.get(attr, 0) + 1
    return [
        f"{_plural(n, 'parameter')} {'has' if n == 1 else 'have'} an attribute {attr!r}: "
        f"a typo for 'requires_grad', so it changed nothing."
        for attr, n in found.items()
    ]


def _trainable_problems(model: nn.Module, expected: Sequence[str]) -> list[str]:
    """What differs between the model's trainable stages and ``expected`` (stage names)."""
    stages = _stage_params(model)
    problems: list[str] = []
    for stage, params in stages.items():
        if not params:
            continue
        trainable = [n for n, p in params if p.requires_grad]
        frozen = [n for n, p in params if not p.requires_grad]
        weights = sum(p.numel() for _, p in params if p.requires_grad)
        if stage in expected:
            if not trainable:
                problems.append(
                    f"{stage} ({_plural(len(params), 'tensor')}) is frozen but should be trainable."
                )
            elif frozen:
                problems.append(
                    f"{stage} is only partly trainable: {len(frozen)} of {len(params)} tensors "
                    f"are frozen ({_names(frozen)})."
                )
        elif trainable and not frozen:
            problems.append(
                f"{stage} ({_plural(len(params), 'tensor')}, {_count(weights)} weights) is still trainable."
            )
        elif trainable:
            problems.append(
                f"{stage} is partly trainable: {len(trainable)} of {len(params)} tensors still "
                f"have requires_grad=True ({_names(trainable)})."
            )
    return problems + (_requires_grad_typos(model) if problems else [])


def _trainable_summary(model: nn.Module) -> str:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{_count(train)} of {_count(total)} weights ({100 * train / max(total, 1):.1f}%) will learn"


def _check_stage_names(model: nn.Module, expected: Iterable[str]) -> list[str]:
    from ..models import stage_names

    valid = stage_names(model)
    expected = list(expected)
    for name in expected:
        if name not in valid:
            raise unknown_name("stage", name, valid)
    return expected


# --------------------------------------------------------------------------- freezing checkers


@register_checker
def frozen_except_head(model: nn.Module) -> Feedback:
    """Only the classification head trains; every backbone stage is frozen."""
    m = _as_model(model)
    if isinstance(m, Feedback):
        return m
    problems = _trainable_problems(m, ["head"])
    if problems:
        return _fail(problems)
    return Feedback(True, f"Only the head is trainable: {_trainable_summary(m)}.")


@register_checker
def trainable_stages(model: nn.Module, expected: Sequence[str]) -> Feedback:
    """Exactly the stages in ``expected`` (e.g. ``["stage5", "top", "head"]``) are trainable."""
    m = _as_model(model)
    if isinstance(m, Feedback):
        return m
    expected = _check_stage_names(m, expected)
    problems = _trainable_problems(m, expected)
    if problems:
        return _fail(problems)
    return Feedback(
        True, f"Trainable: {', '.join(expected)}; everything else is frozen. {_trainable_summary(m)}."
    )


@register_checker
def bn_eval_in_frozen_stages(model: nn.Module) -> Feedback:
    """BatchNorm layers whose weights are frozen are in eval mode while the model trains.

    A frozen BatchNorm in training mode still updates its running mean and variance from
    every batch, so the "frozen" backbone drifts towards the new data's statistics (and a
    batch of 8 gives noisy ones). The fix: ``model.train()`` then ``.eval()`` on those layers.
    """
    from ..models import stage_modules

    m = _as_model(model)
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
            f"{stage} is frozen but {len(names)} of its {frozen_count[stage]} BatchNorm layers "
            f"are in training mode ({_names(names, 3)}): their running statistics will drift."
            for stage, names in wrong.items()
        ]
        problems.append("Call .eval() on the frozen stages' BatchNorm layers after every model.train().")
        return _fail(problems)
    n = sum(frozen_count.values())
    return Feedback(
        True,
        f"All {n} BatchNorm layers in frozen stages ({', '.join(frozen_count)}) are in eval mode; "
        f"{_plural(trainable_bn, 'trainable BatchNorm layer')} can adapt.",
    )


# --------------------------------------------------------------------------- head checker


@functools.lru_cache(maxsize=4)
def _reference_params(backbone: str, pretrained: bool) -> dict[str, torch.Tensor]:
    """Parameter name -> tensor of the untouched ImageNet model (cached: loading takes a while)."""
    from ..models import load_backbone

    ref = load_backbone(backbone, pretrained=pretrained)
    return {n: p.detach().clone() for n, p in ref.named_parameters()}


@register_checker
def new_head(model: nn.Module, num_classes: int, pretrained: bool = True) -> Feedback:
    """The ImageNet classifier was replaced by an ``nn.Linear`` with ``num_classes`` outputs.

    Also checks that the rest is intact: the backbone has the same parameters (names and
    shapes) as the ImageNet model and, with ``pretrained=True``, the same ImageNet weights
    (a backbone built with ``pretrained=False`` would throw away what we transfer).
    """
    m = _as_model(model)
    if isinstance(m, Feedback):
        return m
    from ..models import spec_for

    spec = spec_for(m)
    head_path = spec.head
    try:
        head = m.get_submodule(head_path)
    except AttributeError:
        parts = head_path.split(".")
        owner, where = m, "the model"
        for i in range(1, len(parts)):
            try:
                owner, where = m.get_submodule(".".join(parts[:i])), ".".join(parts[:i])
            except AttributeError:
                break
        return Feedback(
            False,
            f"There is no module at {head_path}, where the {spec.name} head lives: {where} is now "
            f"a {type(owner).__name__}. Replace only the final layer "
            f"(model.{_attr_path(head_path)} = nn.Linear(...)) so the layers before it stay.",
        )
    if not isinstance(head, nn.Linear):
        return Feedback(False, f"The head at {head_path} is a {type(head).__name__}; expected an nn.Linear.")
    reference = _reference_params(spec.name, pretrained)
    problems: list[str] = []
    ref_head = reference[f"{head_path}.weight"]
    if head.out_features != num_classes:
        note = " (that is still the ImageNet classifier)" if head.out_features == ref_head.shape[0] else ""
        problems.append(
            f"The head has {head.out_features} outputs{note}; expected {num_classes}, one per class."
        )
    if head.in_features != ref_head.shape[1]:
        problems.append(
            f"The head reads {head.in_features} features, but the backbone gives {ref_head.shape[1]}."
        )
    mine = {n: p for n, p in m.named_parameters() if not n.startswith(head_path + ".")}
    ref_body = {n: p for n, p in reference.items() if not n.startswith(head_path + ".")}
    missing = [n for n in ref_body if n not in mine]
    extra = [n for n in mine if n not in ref_body]
    reshaped = [n for n in ref_body if n in mine and mine[n].shape != ref_body[n].shape]
    if missing:
        problems.append(f"The backbone lost {_plural(len(missing), 'tensor')}: {_names(missing)}.")
    if extra:
        problems.append(f"The model has {_plural(len(extra), 'unexpected tensor')}: {_names(extra)}.")
    if reshaped:
        problems.append(f"{_plural(len(reshaped), 'backbone tensor')} changed shape: {_names(reshaped)}.")
    if pretrained and not (missing or reshaped):
        changed = [
            n for n in ref_body if not torch.equal(mine[n].detach().cpu(), ref_body[n])
        ]
        if changed:
            problems.append(
                f"{_plural(len(changed), 'backbone tensor')} differ from the ImageNet weights "
                f"({_names(changed, 3)}): was the model built with pretrained=False, or trained already?"
            )
    if problems:
        return _fail(problems)
    return Feedback(
        True,
        f"The head is a new Linear({head.in_features} -> {num_classes}); the {spec.name} backbone "
        "is intact.",
    )


# --------------------------------------------------------------------------- optimizer checkers


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def _stage_of(model: nn.Module) -> dict[str, str]:
    from ..models import stage_of_parameters

    return dict(stage_of_parameters(model))


def _stages_of(names: Iterable[str], stage_of: dict[str, str]) -> list[str]:
    out: list[str] = []
    for n in names:
        s = stage_of.get(n, n)
        if s not in out:
            out.append(s)
    return out


def _coverage_problems(model: nn.Module, optimizer: Any, allow_frozen: bool) -> list[str]:
    """Every trainable tensor in exactly one group; no foreign tensors; frozen ones absent."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        return [f"Expected a torch.optim.Optimizer, got a {type(optimizer).__name__}."]
    names = _param_names(model)
    stage_of = _stage_of(model)
    groups_of: dict[int, list[int]] = {}
    foreign: list[torch.Tensor] = []
    for gi, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            if id(p) not in names:
                foreign.append(p)
            groups_of.setdefault(id(p), []).append(gi)
    problems: list[str] = []
    if foreign:
        shapes = ", ".join(str(list(p.shape)) for p in foreign[:4])
        problems.append(
            f"The optimizer holds {_plural(len(foreign), 'tensor')} that {'is' if len(foreign) == 1 else 'are'} "
            f"not parameters of this model (shapes {shapes}): was it built before the head was "
            "replaced, or for another copy of the model? Build the optimizer after the model surgery."
        )
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in groups_of]
    if missing:
        problems.append(
            f"The optimizer is missing {len(missing)} of {len(trainable)} trainable tensors: {_names(missing)}."
        )
    twice = [names[i] for i, gs in groups_of.items() if len(gs) > 1 and i in names]
    if twice:
        problems.append(f"{_plural(len(twice), 'tensor')} appear in more than one group: {_names(twice)}.")
    if not allow_frozen:
        frozen_in = [n for n, p in model.named_parameters() if not p.requires_grad and id(p) in groups_of]
        if frozen_in:
            problems.append(
                f"The optimizer holds {_plural(len(frozen_in), 'frozen tensor')} (from "
                f"{', '.join(_stages_of(frozen_in, stage_of))}): pass only parameters with "
                "requires_grad=True, so that unfreezing later is a deliberate step."
            )
    return problems


@register_checker
def optimizer_covers_trainable(model: nn.Module, optimizer: Any, allow_frozen: bool = False) -> Feedback:
    """The optimizer updates every trainable parameter, once, and (by default) nothing frozen."""
    m = _as_model(model)
    if isinstance(m, Feedback):
        return m
    problems = _coverage_problems(m, optimizer, allow_frozen)
    if problems:
        return _fail(problems)
    n = sum(1 for p in m.parameters() if p.requires_grad)
    if n == 0:
        return Feedback(False, "No parameter of the model is trainable, so the optimizer has nothing to do.")
    return Feedback(
        True, f"The optimizer covers all {n} trainable tensors in {_plural(len(optimizer.param_groups), 'group')}."
    )


def _group_lr(group: dict) -> float:
    # A scheduler stores the configured rate as initial_lr and may have changed lr (warm-up).
    return float(group.get("initial_lr", group["lr"]))


def _same(a: float, b: float, rel_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0)


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
    m = _as_model(model)
    if isinstance(m, Feedback):
        return m
    if ratio <= 0 or (head_lr is not None and head_lr <= 0):
        raise InvalidParameterError(
            f"discriminative_lrs needs head_lr > 0 and ratio > 0, got head_lr={head_lr!r}, ratio={ratio!r}."
        )
    problems = _coverage_problems(m, optimizer, allow_frozen=False)
    if not isinstance(optimizer, torch.optim.Optimizer):
        return _fail(problems)
    names = _param_names(m)
    stage_of = _stage_of(m)
    if not any(p.requires_grad and stage_of[n] != "head" for n, p in m.named_parameters()):
        return Feedback(
            False,
            "No backbone parameter is trainable, so there is no lower learning rate to set: "
            "unfreeze some stages first.",
        )
    head_groups: list[tuple[int, float]] = []
    base_groups: list[tuple[int, float, list[str]]] = []
    for gi, group in enumerate(optimizer.param_groups):
        pnames = [names[id(p)] for p in group["params"] if id(p) in names and p.requires_grad]
        head = [n for n in pnames if stage_of[n] == "head"]
        base = [n for n in pnames if stage_of[n] != "head"]
        lr = _group_lr(group)
        if head and base:
            problems.append(
                f"Group {gi} mixes the head ({_plural(len(head), 'tensor')}) with backbone stages "
                f"({', '.join(_stages_of(base, stage_of))}; {_plural(len(base), 'tensor')}): they share one "
                "learning rate. Put the head in its own group."
            )
        elif head:
            head_groups.append((gi, lr))
        elif base:
            base_groups.append((gi, lr, _stages_of(base, stage_of)))
    reference = head_lr
    for gi, lr in head_groups:
        if head_lr is not None and not _same(lr, head_lr, rel_tol):
            problems.append(f"The head's group (group {gi}) has lr {lr:g}; expected head_lr = {head_lr:g}.")
        elif reference is None:
            reference = lr
    if reference is not None:
        want = reference / ratio
        for gi, lr, stages in base_groups:
            if not _same(lr, want, rel_tol):
                actual = reference / lr if lr else math.inf
                problems.append(
                    f"Group {gi} ({', '.join(stages)}) has lr {lr:g}, which is head lr / {actual:g}; "
                    f"expected head lr / {ratio:g} = {want:g}."
                )
    if problems:
        return _fail(problems)
    stages = [s for _, _, ss in base_groups for s in ss]
    return Feedback(
        True,
        f"Head lr {reference:g}; backbone ({', '.join(stages)}) lr {reference / ratio:g} = head / {ratio:g}; "
        "every trainable tensor is in exactly one group.",
    )


# --------------------------------------------------------------------------- value helpers


def _as_array(value: Any) -> Any:
    import numpy as np

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("a boolean is not a number")
    return np.asarray(value, dtype=float)


@register_checker
def value_close(value: Any, expected: Any, rel_tol: float = 1e-6, abs_tol: float = 0.0) -> Feedback:
    """A number (or array / tensor of numbers) close to ``expected``.

    ``|value - expected| <= max(rel_tol * |expected|, abs_tol)``, elementwise. The message says
    whether a wrong scalar is too high or too low, not what the answer is.
    """
    import numpy as np

    try:
        got = _as_array(value)
    except (TypeError, ValueError):
        return Feedback(False, f"{value!r} is not a number.")
    want = np.asarray(expected, dtype=float)
    if got.shape != want.shape:
        return Feedback(False, f"Expected shape {tuple(want.shape)}, got {tuple(got.shape)}.")
    if np.isnan(got).any():
        return Feedback(False, "The value contains NaN." if got.ndim else "The value is NaN.")
    tol = np.maximum(rel_tol * np.abs(want), abs_tol)
    bad = np.abs(got - want) > tol
    if want.ndim == 0:
        if bad:
            side = "too high" if got > want else "too low"
            return Feedback(False, f"{float(got):g} is {side}.")
        return Feedback(True, f"{float(got):g} is right.")
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        return Feedback(
            False, f"{int(bad.sum())} of {bad.size} values are off (the first at index {first})."
        )
    return Feedback(True, f"All {want.size} values are right.")


@register_checker
def value_equal(value: Any, expected: Any) -> Feedback:
    """Exactly ``expected`` (class names, a shape, a stage name); lists and tuples compare alike."""

    def norm(v: Any) -> Any:
        if isinstance(v, torch.Size):
            return list(v)
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        return v

    if norm(value) == norm(expected):
        return Feedback(True, f"{value!r} is right.")
    if isinstance(norm(value), list) and isinstance(norm(expected), list) and len(value) != len(expected):
        return Feedback(False, f"Expected {len(expected)} items, got {len(value)}.")
    return Feedback(False, f"{value!r} is not the expected value.")


__all__ = [
    "CHECKERS",
    "Feedback",
    "bn_eval_in_frozen_stages",
    "discriminative_lrs",
    "frozen_except_head",
    "get_checker",
    "new_head",
    "optimizer_covers_trainable",
    "register_checker",
    "trainable_stages",
    "value_close",
    "value_equal",
]
