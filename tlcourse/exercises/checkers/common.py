"""What the checkers share: the generic value checks and the helpers every lesson's checks use.

A question bank names a checker (``checker: frozen_except_head``) and may fix some of its
keyword arguments (``expected: {num_classes: 3}``); the notebook passes the learner's objects
(``ex.check_code("q5", model=model, optimizer=opt)``). Every checker returns a
:class:`~tlcourse.exercises.feedback.Feedback` whose message *names the mistake*: which stage
is still trainable, which tensors the optimizer misses, which group has the wrong learning
rate. A bare "wrong" teaches nothing; "stage5 (27 tensors) is still trainable" does.

Checkers never raise for a learner's mistake (a wrong object, a missing head): that is a
``Feedback(False, ...)``. They raise :class:`~tlcourse.errors.CourseError` only when the
*bank* is wrong (an unknown stage name in ``expected``), so authors find their bugs.

This module holds the two checks that belong to no lesson (:func:`value_close`,
:func:`value_equal`) and the helpers more than one lesson's checkers need, so that each job
(reading a learner's numbers, listing what differs between trainable stages, checking that an
optimizer holds the right tensors) is written once.
"""
from __future__ import annotations

import difflib
import functools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..._checks import is_finite_number

from ...errors import unknown_name
from ..feedback import Feedback
from .registry import register_checker

# --------------------------------------------------------------------------- wording


def names(items: Sequence[str], limit: int = 4) -> str:
    """``a, b, c and 5 more``: enough names to find the mistake without a wall of text."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"


def count(n: int) -> str:
    return f"{n:,}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fail(problems: Sequence[str]) -> Feedback:
    """One wrong answer with every problem found: a single line, or a bulleted list."""
    if len(problems) == 1:
        return Feedback(False, problems[0])
    return Feedback(False, "\n".join(f"- {p}" for p in problems))


# --------------------------------------------------------------------------- the learner's numbers


def as_float_array(value: Any) -> np.ndarray:
    """A float array from a number, list, numpy array, (CPU or device) tensor or pandas column.

    Raises ``TypeError`` for a boolean (``True`` is not a number to grade) and ``TypeError`` or
    ``ValueError`` for anything numpy cannot read as numbers; each checker turns that into the
    feedback its question needs.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    elif hasattr(value, "to_numpy"):  # a pandas Series or DataFrame column
        value = value.to_numpy()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("a boolean is not a number")
    return np.asarray(value, dtype=float)


def vector(values: Any, name: str) -> np.ndarray | Feedback:
    """A 1-D, non-empty float array, or the Feedback saying why ``values`` is not one."""
    try:
        array = as_float_array(values)
    except (TypeError, ValueError):
        return Feedback(False, f"{name} must be a list, array or tensor of numbers; got {type(values).__name__}.")
    if array.ndim != 1 or array.size == 0:
        return Feedback(False, f"{name} must be one non-empty row of numbers (1-D); got shape {array.shape}.")
    return array


def number(value: Any, name: str) -> float | Feedback:
    """One finite number (a one-element tensor and numpy scalars count), or why ``value`` is not."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not is_finite_number(value):  # numpy scalars count; True, NaN and 10**400 do not
        return Feedback(False, f"{name} must be one finite number; got {value!r}.")
    return float(value)


def number_and_vectors(
    value: Any, value_name: str, first: Any, first_name: str, second: Any, second_name: str
) -> tuple[float, np.ndarray, np.ndarray] | Feedback:
    """A learner's number and the two same-length vectors it is computed from (labels and
    predictions, scores and labels), or the Feedback naming the first one that is not usable."""
    v = number(value, value_name)
    if isinstance(v, Feedback):
        return v
    a, b = vector(first, first_name), vector(second, second_name)
    for array in (a, b):
        if isinstance(array, Feedback):
            return array
    if a.shape != b.shape:
        return Feedback(False, f"{first_name} ({a.size}) and {second_name} ({b.size}) must have the same length.")
    return v, a, b


# --------------------------------------------------------------------------- models and stages


def as_model(model: Any) -> nn.Module | Feedback:
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


def stage_of(model: nn.Module) -> dict[str, str]:
    """Parameter name -> the stage it belongs to (``stem`` ... ``head``)."""
    from ...models import stage_of_parameters

    return dict(stage_of_parameters(model))


def stages_of(param_names: Iterable[str], stages: dict[str, str]) -> list[str]:
    """The stages the named parameters belong to, each once, in the order first met."""
    out: list[str] = []
    for n in param_names:
        s = stages.get(n, n)
        if s not in out:
            out.append(s)
    return out


def _stage_params(model: nn.Module) -> "OrderedDict[str, list[tuple[str, nn.Parameter]]]":
    """Stage name -> its (name, parameter) pairs, stages in forward order, head last."""
    from ...models import stage_names

    stages = stage_of(model)
    out: OrderedDict[str, list[tuple[str, nn.Parameter]]] = OrderedDict(
        (s, []) for s in stage_names(model)
    )
    for pname, param in model.named_parameters():
        out[stages[pname]].append((pname, param))
    return out


def _requires_grad_typos(model: nn.Module) -> list[str]:
    """Attributes like ``p.require_grad = False`` that look like ``requires_grad`` but do nothing."""
    found: dict[str, int] = {}
    for _, param in model.named_parameters():
        for attr in getattr(param, "__dict__", {}):
            if attr != "requires_grad" and difflib.SequenceMatcher(None, attr, "requires_grad").ratio() > 0.8:
                found[attr] = found.get(attr, 0) + 1
    return [
        f"{plural(n, 'parameter')} {'has' if n == 1 else 'have'} an attribute {attr!r}: "
        f"a typo for 'requires_grad', so it changed nothing."
        for attr, n in found.items()
    ]


def trainable_problems(model: nn.Module, expected: Sequence[str]) -> list[str]:
    """What differs between the model's trainable stages and ``expected`` (stage names)."""
    problems: list[str] = []
    for stage, params in _stage_params(model).items():
        if not params:
            continue
        trainable = [n for n, p in params if p.requires_grad]
        frozen = [n for n, p in params if not p.requires_grad]
        weights = sum(p.numel() for _, p in params if p.requires_grad)
        if stage in expected:
            if not trainable:
                problems.append(
                    f"{stage} ({plural(len(params), 'tensor')}) is frozen but should be trainable."
                )
            elif frozen:
                problems.append(
                    f"{stage} is only partly trainable: {len(frozen)} of {len(params)} tensors "
                    f"are frozen ({names(frozen)})."
                )
        elif trainable and not frozen:
            problems.append(
                f"{stage} ({plural(len(params), 'tensor')}, {count(weights)} weights) is still trainable."
            )
        elif trainable:
            problems.append(
                f"{stage} is partly trainable: {len(trainable)} of {len(params)} tensors still "
                f"have requires_grad=True ({names(trainable)})."
            )
    return problems + (_requires_grad_typos(model) if problems else [])


def trainable_summary(model: nn.Module) -> str:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{count(train)} of {count(total)} weights ({100 * train / max(total, 1):.1f}%) will learn"


def check_stage_names(model: nn.Module, expected: Iterable[str]) -> list[str]:
    """``expected`` as a list, after checking every name is a stage of ``model`` (a bank's typo raises)."""
    from ...models import stage_names

    valid = stage_names(model)
    expected = list(expected)
    for name in expected:
        if name not in valid:
            raise unknown_name("stage", name, valid)
    return expected


@functools.lru_cache(maxsize=4)
def reference_params(backbone: str, pretrained: bool) -> dict[str, torch.Tensor]:
    """Parameter name -> tensor of the untouched ImageNet model (cached: loading takes a while)."""
    from ...models import load_backbone

    ref = load_backbone(backbone, pretrained=pretrained)
    return {n: p.detach().clone() for n, p in ref.named_parameters()}


# --------------------------------------------------------------------------- optimizers


def param_names(model: nn.Module) -> dict[int, str]:
    """``id(parameter)`` -> its name: how a tensor in an optimizer is found in the model."""
    return {id(p): n for n, p in model.named_parameters()}


def configured_lr(group: dict[str, Any]) -> float:
    """The rate the learner configured for a parameter group.

    A scheduler keeps that rate as ``initial_lr`` and may already have changed ``lr`` (warm-up).
    """
    return float(group.get("initial_lr", group["lr"]))


def coverage_problems(model: nn.Module, optimizer: Any, allow_frozen: bool) -> list[str]:
    """Every trainable tensor in exactly one group; no foreign tensors; frozen ones absent."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        return [f"Expected a torch.optim.Optimizer, got a {type(optimizer).__name__}."]
    by_id = param_names(model)
    stages = stage_of(model)
    groups_of: dict[int, list[int]] = {}
    foreign: list[torch.Tensor] = []
    for gi, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            if id(p) not in by_id:
                foreign.append(p)
            groups_of.setdefault(id(p), []).append(gi)
    problems: list[str] = []
    if foreign:
        shapes = ", ".join(str(list(p.shape)) for p in foreign[:4])
        problems.append(
            f"The optimizer holds {plural(len(foreign), 'tensor')} that {'is' if len(foreign) == 1 else 'are'} "
            f"not parameters of this model (shapes {shapes}): was it built before the head was "
            "replaced, or for another copy of the model? Build the optimizer after the model surgery."
        )
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in groups_of]
    if missing:
        problems.append(
            f"The optimizer is missing {len(missing)} of {len(trainable)} trainable tensors: {names(missing)}."
        )
    twice = [by_id[i] for i, gs in groups_of.items() if len(gs) > 1 and i in by_id]
    if twice:
        problems.append(f"{plural(len(twice), 'tensor')} appear in more than one group: {names(twice)}.")
    if not allow_frozen:
        frozen_in = [n for n, p in model.named_parameters() if not p.requires_grad and id(p) in groups_of]
        if frozen_in:
            problems.append(
                f"The optimizer holds {plural(len(frozen_in), 'frozen tensor')} (from "
                f"{', '.join(stages_of(frozen_in, stages))}): pass only parameters with "
                "requires_grad=True, so that unfreezing later is a deliberate step."
            )
    return problems


def optimizer_coverage(model: Any, optimizer: Any, allow_frozen: bool = False) -> Feedback:
    """Whether the optimizer updates every trainable parameter, once, and (by default) nothing frozen.

    Lesson 03's ``optimizer_covers_trainable`` is this check; lesson 05's layer-wise decay
    checker runs it first, since rates on the wrong tensors are beside the point.
    """
    m = as_model(model)
    if isinstance(m, Feedback):
        return m
    problems = coverage_problems(m, optimizer, allow_frozen)
    if problems:
        return fail(problems)
    n = sum(1 for p in m.parameters() if p.requires_grad)
    if n == 0:
        return Feedback(False, "No parameter of the model is trainable, so the optimizer has nothing to do.")
    return Feedback(
        True, f"The optimizer covers all {n} trainable tensors in {plural(len(optimizer.param_groups), 'group')}."
    )


# --------------------------------------------------------------------------- generic checks


@register_checker
def value_close(value: Any, expected: Any, rel_tol: float = 1e-6, abs_tol: float = 0.0) -> Feedback:
    """A number (or array / tensor of numbers) close to ``expected``.

    ``|value - expected| <= max(rel_tol * |expected|, abs_tol)``, elementwise. The message says
    whether a wrong scalar is too high or too low, not what the answer is.
    """
    try:
        got = as_float_array(value)
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


__all__ = ["value_close", "value_equal"]
