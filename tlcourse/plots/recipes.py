"""How a transfer recipe sets up the model: which stages train, which are frozen, what their
BatchNorm layers do, and the learning rate each stage gets."""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory
from torch import nn

from ..errors import InvalidParameterError
from ._figures import WRONG, one_axes
from ._models import arch_name

#: colours shared by all plots so "trainable" and "frozen" look the same everywhere
STATUS_COLOURS = {"trainable": "#2ca02c", "partial": "#ff7f0e", "frozen": "#7f7f7f", "empty": "#d9d9d9"}


def _fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def stage_summary(model: nn.Module) -> "OrderedDict[str, dict[str, Any]]":
    """Per stage: parameters, trainable parameters, status and BatchNorm layers in train mode.

    The numbers behind :func:`plot_stage_diagram`, handy to print or assert on. They are
    :func:`tlcourse.models.freeze_audit`'s (the one count of what is frozen), keyed the way the
    diagram reads them, with one status the audit has no use for: a stage without parameters
    is ``"empty"`` (drawn grey) rather than ``"frozen"``.
    """
    from ..models import freeze_audit

    summary: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for stage, row in freeze_audit(model).iterrows():
        params = int(row["parameters"])
        summary[str(stage)] = {
            "params": params,
            "trainable": int(row["trainable"]),
            "batchnorm": int(row["bn_layers"]),
            "batchnorm_training": int(row["bn_train"]),
            "status": "empty" if params == 0 else str(row["status"]),
        }
    return summary


def plot_stage_diagram(model: nn.Module, ax: Axes | None = None) -> Figure:
    """The model as a stack of stages: which are trainable, frozen or partly frozen.

    Bar length is the stage's parameter count (log scale; the number is written on it).
    Hatched bars contain BatchNorm layers in train mode: their running statistics change on
    every batch even when their weights are frozen, a classic fine-tuning trap. Call it after
    ``model.train()`` to see what training will actually do.
    """
    where = "plot_stage_diagram"
    summary = stage_summary(model)
    stages = list(summary)
    fig, ax = one_axes(ax, (9.0, 0.45 * len(stages) + 2.2), where)
    totals = np.array([max(summary[s]["params"], 1) for s in stages], dtype=float)
    # the notes sit in a column right of the bars: x in axes fraction, y in data (stage) units
    notes = blended_transform_factory(ax.transAxes, ax.transData)
    for y, stage in enumerate(stages):
        row = summary[stage]
        hatch = "///" if row["batchnorm_training"] else None
        ax.barh(y, totals[y], color=STATUS_COLOURS[row["status"]], hatch=hatch, edgecolor="black", lw=0.6)
        text = f"{_fmt_count(row['params'])} params, {row['status']}"
        if row["status"] == "partial":
            text += f" ({_fmt_count(row['trainable'])} trainable)"
        trap = row["batchnorm_training"] and row["status"] != "trainable"
        if trap:
            text += f"\n{row['batchnorm_training']} BatchNorm in train mode: stats still update!"
        elif row["batchnorm_training"]:
            text += f", {row['batchnorm_training']} BatchNorm in train mode"
        ax.text(1.02, y, text, transform=notes, va="center", fontsize=8, color=WRONG if trap else "black")
    ax.set_xscale("log")
    ax.set_xlim(1, totals.max() * 3)
    ax.set_yticks(np.arange(len(stages)), stages)
    ax.invert_yaxis()  # input at the top, head at the bottom: the order data flows
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("stage (input → output)")
    total = sum(r["params"] for r in summary.values())
    trainable = sum(r["trainable"] for r in summary.values())
    ax.set_title(
        f"{arch_name(model)}: {_fmt_count(trainable)} of {_fmt_count(total)} parameters trainable "
        f"({trainable / max(total, 1):.1%})\nmodel in {'train' if model.training else 'eval'} mode",
        fontsize=10,
    )
    present = {r["status"] for r in summary.values()}
    handles = [Patch(color=STATUS_COLOURS[s], label=s) for s in ("trainable", "partial", "frozen", "empty") if s in present]
    if any(r["batchnorm_training"] for r in summary.values()):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="BatchNorm in train mode"))
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(handles), frameon=False)
    return fig


def plot_lr_per_stage(optimizer_or_param_groups: Any, ax: Axes | None = None) -> Figure:
    """The learning rate of each parameter group (log scale), labelled by stage.

    Discriminative learning rates give early, generic stages small steps and the new head big
    ones; this makes the schedule visible. A group at lr 0 is marked "0 (frozen)".
    """
    where = "plot_lr_per_stage"
    groups = getattr(optimizer_or_param_groups, "param_groups", optimizer_or_param_groups)
    if isinstance(groups, Mapping) or not isinstance(groups, Sequence) or not groups:
        raise InvalidParameterError(
            f"{where}: pass an optimizer or a non-empty list of parameter-group dicts with an "
            f"'lr' key, got {type(optimizer_or_param_groups).__name__}."
        )
    labels: list[str] = []
    rates: list[float] = []
    for i, group in enumerate(groups):
        if not isinstance(group, Mapping) or "lr" not in group:
            raise InvalidParameterError(f"{where}: parameter group {i} has no 'lr' key: {group!r:.80}.")
        lr = float(group["lr"])
        if not math.isfinite(lr) or lr < 0:
            raise InvalidParameterError(f"{where}: parameter group {i} has lr={lr}; learning rates are >= 0.")
        base = str(group.get("stage") or group.get("name") or f"group {i}")
        label, n = base, 2
        while label in labels:  # e.g. a stage split into decay / no-decay groups
            label, n = f"{base} ({n})", n + 1
        labels.append(label)
        rates.append(lr)
    fig, ax = one_axes(ax, (max(4.5, 0.7 * len(labels) + 2.0), 3.6), where)
    xs = np.arange(len(labels))
    positive = [r for r in rates if r > 0]
    floor = min(positive) / 10 if positive else 1e-8
    ax.bar(xs, [r if r > 0 else np.nan for r in rates], color="#1f77b4", bottom=0)
    if positive:
        ax.set_yscale("log")
        ax.set_ylim(floor, max(positive) * 5)
    for x, r in zip(xs, rates):
        ax.text(x, r * 1.15 if r > 0 else floor * 1.5, f"{r:.1e}" if r > 0 else "0\n(frozen)",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, labels, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_xlabel("parameter group (input → output)")
    ax.set_ylabel("learning rate (log scale)")
    ax.set_title("Learning rate per stage", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


__all__ = ["STATUS_COLOURS", "plot_lr_per_stage", "plot_stage_diagram", "stage_summary"]
