"""Checkers for lesson 09 (choosing a model to deploy).

Like every checker, each returns a :class:`~tlcourse.exercises.feedback.Feedback` whose message names the
learner's mistake (a count of tensors instead of values, a model left in training mode, the
fastest model picked when a more accurate one also meets the budget), and raises
:class:`~tlcourse.errors.CourseError` only when the bank itself is wrong.
"""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from typing import Any

from torch import nn

from ..._checks import is_int, is_number, is_positive_number
from ..feedback import Feedback
from .common import as_model
from .registry import register_checker


@functools.lru_cache(maxsize=8)
def _counts(backbone: str, num_classes: int) -> dict[str, int]:
    """The right answer and the usual wrong ones, from the architecture (no weights needed)."""
    from ...models import create_model, get_head, get_spec, load_backbone

    get_spec(backbone)  # a bank's typo fails here, with the valid names
    model, _ = create_model(backbone, num_classes, pretrained=False)
    imagenet = load_backbone(backbone, pretrained=False)
    head = get_head(model)
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "head": sum(p.numel() for p in head.parameters()),
        "imagenet": sum(p.numel() for p in imagenet.parameters()),
        "tensors": len(list(model.parameters())),
        "state_dict": sum(t.numel() for t in model.state_dict().values()),
        "backbone_only": sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in head.parameters()),
    }


@register_checker
def parameter_count(value: Any, backbone: str, num_classes: int) -> Feedback:
    """``value`` is the number of parameters (values, not tensors) of ``backbone`` with a new head.

    The usual mistakes each get their own message: counting tensors, counting the ImageNet
    model with its 1000-way head, counting only the (trainable) head or only the backbone, and
    counting the state_dict (which adds BatchNorm's running statistics, buffers that are not
    parameters).
    """
    if not (is_int(value) or (is_number(value) and float(value).is_integer())):
        return Feedback(False, f"Expected a whole number of parameters, got {value!r}.")
    value = int(value)
    counts = _counts(backbone, int(num_classes))
    if value == counts["total"]:
        return Feedback(True, f"{value:,} parameters: right. At 4 bytes each (float32) that is about "
                              f"{value * 4 / 1e6:.1f} MB of weights.")
    mistakes = {
        "tensors": "is the number of parameter *tensors* (len(list(model.parameters()))); count the values "
                   "in them: sum(p.numel() for p in model.parameters()).",
        "imagenet": f"is the ImageNet model with its 1000-way head; count the model with the new "
                    f"{num_classes}-way head.",
        "head": "is the head alone (perhaps you counted only trainable parameters after freezing the "
                "backbone); the deployed file holds the whole network.",
        "backbone_only": "leaves out the head; the deployed model includes it.",
        "state_dict": "counts the state_dict, which also holds BatchNorm's running statistics and batch "
                      "counters: buffers, not parameters. Use model.parameters().",
    }
    for key, message in mistakes.items():
        if value == counts[key]:
            return Feedback(False, f"{value:,} {message}")
    side = "too high" if value > counts["total"] else "too low"
    return Feedback(False, f"{value:,} is {side}. Sum p.numel() over model.parameters() of the model with the "
                           f"new {num_classes}-way head.")


@register_checker
def inference_ready(model: Any) -> Feedback:
    """Every module of ``model`` is in eval mode, as a deployed (or timed) model must be.

    In training mode BatchNorm normalises with each batch's statistics (and updates its
    running ones) and Dropout zeroes features at random: predictions then depend on the batch
    and change from call to call, and timings include work deployment never does.
    """
    checked = as_model(model)
    if isinstance(checked, Feedback):
        return checked
    training = [(name, m) for name, m in model.named_modules() if m.training]
    if not training:
        return Feedback(True, "Every module is in eval mode: BatchNorm uses its stored statistics and Dropout is off, "
                              "so the same photo always gets the same prediction.")
    total = sum(1 for _ in model.modules())
    if len(training) == total:
        return Feedback(False, "The whole model is still in training mode (model.training is True). Call "
                               "model.eval() - with the parentheses: `model.eval` alone does nothing.")
    # BatchNorm and Dropout are the layers whose behaviour changes with the mode: name them first.
    important = [(n, m) for n, m in training if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout))]
    shown = important or training
    kinds = Counter(type(m).__name__ for _, m in shown)
    examples = ", ".join(n or "(the model itself)" for n, _ in shown[:3])
    kinds_text = ", ".join(f"{k} x{c}" for k, c in kinds.most_common(4))
    if not model.training:
        return Feedback(False, f"model.training is False, but {len(training)} submodules are still in training "
                               f"mode (among them {kinds_text}; e.g. {examples}). Setting the attribute does not reach the "
                               "submodules: call model.eval(), which switches every module.")
    return Feedback(False, f"Only part of the model is in eval mode: {len(training)} modules are still training "
                           f"(among them {kinds_text}; e.g. {examples}). Call model.eval() on the whole model, not on a part.")


def _rows(table: Any) -> dict[str, dict[str, float]] | str:
    """name -> {test_acc, latency_ms} from a DataFrame (index or a 'backbone' column), or a list of dicts."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a course dependency
        pd = None
    records: list[Mapping[str, Any]]
    if pd is not None and isinstance(table, pd.DataFrame):
        frame = table if "backbone" in table.columns else table.reset_index().rename(columns={"index": "backbone"})
        records = frame.to_dict("records")
    elif isinstance(table, (list, tuple)) and all(isinstance(r, Mapping) for r in table):
        records = list(table)
    else:
        return f"Expected the comparison table (a DataFrame or a list of dicts), got a {type(table).__name__}."
    out = {}
    for r in records:
        missing = [k for k in ("backbone", "test_acc", "latency_ms") if k not in r]
        if missing:
            return f"The table needs the columns backbone, test_acc and latency_ms; missing {', '.join(missing)}."
        out[str(r["backbone"])] = {"test_acc": float(r["test_acc"]), "latency_ms": float(r["latency_ms"])}
    if not out:
        return "The table is empty."
    return out


@register_checker
def best_under_budget(choice: Any, table: Any, budget_ms: float) -> Feedback:
    """``choice`` is the most accurate model whose ``latency_ms`` is within ``budget_ms`` (None if none is).

    The table is the learner's own measurements, so the right answer follows from it on any
    machine. Messages name the mistake: a model over the budget, the fastest model instead of
    the most accurate one that fits, the most accurate overall ignoring the budget.
    """
    if not is_positive_number(budget_ms):
        return Feedback(False, f"budget_ms must be a positive number of milliseconds, got {budget_ms!r}.")
    rows = _rows(table)
    if isinstance(rows, str):
        return Feedback(False, rows)
    fits = {n: r for n, r in rows.items() if r["latency_ms"] <= budget_ms}
    right = max(fits, key=lambda n: fits[n]["test_acc"]) if fits else None
    fastest = min(rows, key=lambda n: rows[n]["latency_ms"])
    most_accurate = max(rows, key=lambda n: rows[n]["test_acc"])
    if right is not None and isinstance(choice, str) and choice in fits and fits[choice]["test_acc"] == fits[right]["test_acc"]:
        right = choice  # a tie for the best accuracy: either tied model is right
    if choice == right:
        if right is None:
            return Feedback(True, f"Right: no candidate meets {budget_ms:g} ms, so none can be deployed as it is.")
        return Feedback(True, f"Right: {right} ({rows[right]['test_acc']:.1%}, {rows[right]['latency_ms']:.1f} ms) "
                              f"is the most accurate of the {len(fits)} model(s) within {budget_ms:g} ms.")
    if choice is None:
        return Feedback(False, f"{', '.join(sorted(fits))} meet(s) the {budget_ms:g} ms budget, so there is a model to pick.")
    if not isinstance(choice, str) or choice not in rows:
        return Feedback(False, f"{choice!r} is not one of the candidates in the table: {', '.join(rows)}. "
                               "Give the backbone's name as a string.")
    r = rows[choice]
    if choice not in fits:
        extra = " It is the most accurate overall, but the budget comes first." if choice == most_accurate else ""
        tail = ("" if right is not None else " No candidate fits: the answer is None.")
        return Feedback(False, f"{choice} takes {r['latency_ms']:.1f} ms, over the {budget_ms:g} ms budget.{extra} "
                               f"Keep only the models with latency_ms <= budget_ms first.{tail}")
    better = rows[right]
    extra = " You picked the fastest; the budget only has to be met, not beaten." if choice == fastest else ""
    return Feedback(False, f"{choice} meets the budget, but {right} also does and is more accurate "
                           f"({better['test_acc']:.1%} vs {r['test_acc']:.1%}).{extra}")


@register_checker
def int8_decision(ship: Any, fp32_acc: float, int8_acc: float, max_drop: float) -> Feedback:
    """``ship`` is "int8" exactly when int8 costs at most ``max_drop`` of accuracy, else "float32".

    The numbers are the learner's own (from lesson 09's table), so the right answer follows from them. The
    messages name the usual slips: a relative drop (a fraction of the float32 accuracy) instead of the
    absolute one, and refusing an int8 model that is even more accurate.
    """
    for name, value in (("fp32_acc", fp32_acc), ("int8_acc", int8_acc), ("max_drop", max_drop)):
        if not is_number(value) or not 0 <= float(value) <= 1:
            return Feedback(False, f"{name} must be a fraction between 0 and 1 (0.95 for 95%), got {value!r}.")
    drop = float(fp32_acc) - float(int8_acc)
    right = "int8" if drop <= float(max_drop) + 1e-12 else "float32"
    if ship not in ("int8", "float32"):
        return Feedback(False, f'ship must be the string "int8" or "float32", got {ship!r}.')
    if ship == right:
        verdict = "within" if right == "int8" else "over"
        return Feedback(True, f"Right: int8 costs {drop * 100:+.1f} points, {verdict} the limit of "
                              f"{float(max_drop) * 100:.1f}; ship {right}.")
    relative = drop / float(fp32_acc) if float(fp32_acc) else drop  # always >= drop
    if right == "int8" and drop < 0:
        why = " int8 is even more accurate here (the drop is negative): nothing is lost."
    elif right == "int8" and relative > float(max_drop):
        why = (f" Careful: the limit is in accuracy (fp32_acc - int8_acc = {drop:.4f}), not a fraction of fp32_acc "
               f"({relative:.4f}).")
    else:
        why = ""
    return Feedback(False, f"int8 costs {drop * 100:+.1f} points against a limit of {float(max_drop) * 100:.1f}, "
                           f"so the answer is {right}, not {ship}.{why}")


__all__ = ["best_under_budget", "inference_ready", "int8_decision", "parameter_count"]
