"""The learning-rate range test: how to *choose* a rate instead of copying one.

Train for a few hundred steps while the learning rate grows geometrically from tiny to huge,
and record the loss at every step. At first the rate is too small to change anything and the
loss stays flat; then it falls, faster and faster; past some rate the steps overshoot and the
loss shoots up. A good rate lies on the falling part, about ten times below the rate of the
lowest loss (Leslie Smith's range test; fastai's ``lr_find``).

:func:`lr_range_test` is only the plumbing around that loop: it trains a *borrowed* model and
gives it back exactly as it was (weights, BatchNorm statistics, optimizer state and rates,
every module's train/eval flag), so the sweep costs a few seconds and changes nothing. The
notebook reads the curve (:func:`tlcourse.plots.plot_lr_range`) and decides.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .._checks import int_at_least, positive_number
from ..device import pick_device
from ..errors import InvalidParameterError
from ..models.modes import preserving_modes, start_training
from .loop import _check_batch, _loader, _place, _to_layout


@dataclass
class LRSweep:
    """One range test: the rate and the loss at every step.

    ``lrs`` are the rates of the optimizer's fastest group (the head's, when the groups are
    discriminative): every group keeps its ratio to it during the sweep. ``smoothed`` is an
    exponential moving average of ``losses`` (bias-corrected), since a single batch's loss is
    noisy. ``stopped`` says why the sweep ended before ``end_lr``, if it did.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped: str = ""
    ratios: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lrs)

    @property
    def lr_at_min(self) -> float:
        """The rate where the smoothed loss was lowest: the edge, not the rate to train at."""
        return self.lrs[min(range(len(self)), key=self.smoothed.__getitem__)]

    def suggestion(self, factor: float = 10.0) -> float:
        """``lr_at_min / factor``: the usual reading of the curve (one decade below the minimum)."""
        return self.lr_at_min / positive_number(factor, "factor", where="LRSweep.suggestion")

    def loss_at(self, lr: float) -> float:
        """The smoothed loss at rate ``lr`` (interpolated on the log scale of the rates)."""
        lr = positive_number(lr, "lr", where="LRSweep.loss_at")
        if not self.lrs[0] <= lr <= self.lrs[-1]:
            raise InvalidParameterError(
                f"LRSweep.loss_at: lr={lr:g} is outside the swept range {self.lrs[0]:g} .. {self.lrs[-1]:g}. "
                "Pick a rate the sweep covered."
            )
        x = math.log(lr)
        logs = [math.log(r) for r in self.lrs]
        for i in range(len(logs) - 1):
            if logs[i] <= x <= logs[i + 1]:
                t = (x - logs[i]) / (logs[i + 1] - logs[i]) if logs[i + 1] > logs[i] else 0.0
                return self.smoothed[i] + t * (self.smoothed[i + 1] - self.smoothed[i])
        return self.smoothed[-1]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"lr": self.lrs, "loss": self.losses, "smoothed": self.smoothed})

    def __repr__(self) -> str:
        end = f"; stopped: {self.stopped}" if self.stopped else ""
        return (
            f"LRSweep({len(self)} steps, lr {self.lrs[0]:.2g} .. {self.lrs[-1]:.2g}; lowest smoothed loss "
            f"{min(self.smoothed):.3f} at lr {self.lr_at_min:.2g}{end})"
        )


def _check_range(start_lr: float, end_lr: float, steps: int, smoothing: float, stop_factor: float) -> None:
    where = "lr_range_test"
    positive_number(start_lr, "start_lr", where=where)
    positive_number(end_lr, "end_lr", where=where)
    if end_lr <= start_lr:
        raise InvalidParameterError(
            f"{where}: end_lr ({end_lr:g}) must be larger than start_lr ({start_lr:g}): the sweep goes up."
        )
    int_at_least(steps, "steps", 10, where=where, hint="A curve needs a few dozen points; 100-300 is usual.")
    if not (isinstance(smoothing, (int, float)) and 0 < smoothing < 1):
        raise InvalidParameterError(f"{where}: smoothing must be between 0 and 1 (0.05 is usual), got {smoothing!r}.")
    if not (isinstance(stop_factor, (int, float)) and stop_factor > 1):
        raise InvalidParameterError(
            f"{where}: stop_factor must be above 1 (the sweep stops once the loss exceeds stop_factor x its "
            f"lowest value; 4 is usual), got {stop_factor!r}."
        )


def _endless_batches(data: Dataset, batch_size: int, seed: int):
    """Batches forever: a fresh seeded shuffle per pass, so a small set can feed a long sweep."""
    for epoch in itertools.count():
        yield from _loader(data, batch_size, shuffle=True, seed=seed + epoch)


def _sweep(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches, criterion: nn.Module, device: torch.device,
    channels_last: bool, rates: list[float], ratios: list[float], smoothing: float, stop_factor: float,
    freeze_bn: bool, progress: bool,
) -> LRSweep:
    sweep = LRSweep([], [], [], ratios=ratios)
    average, best = 0.0, math.inf
    start_training(model, freeze_bn)
    for step, lr in enumerate(tqdm(rates, desc="lr range test", leave=False, disable=not progress)):
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio
        x, y = next(batches)
        _check_batch(x)
        x, y = _to_layout(x.to(device), channels_last), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x).float(), y)
        value = float(loss.detach())
        if not math.isfinite(value):
            sweep.stopped = f"the loss became {value} at lr {lr:.2g}"
            break
        loss.backward()
        optimizer.step()
        average = smoothing * value + (1 - smoothing) * average
        smoothed = average / (1 - (1 - smoothing) ** (step + 1))
        sweep.lrs.append(lr)
        sweep.losses.append(value)
        sweep.smoothed.append(smoothed)
        best = min(best, smoothed)
        if step >= 10 and smoothed > stop_factor * best:
            sweep.stopped = f"the loss passed {stop_factor:g}x its lowest value at lr {lr:.2g}"
            break
    return sweep


def lr_range_test(
    model: nn.Module,
    data: Dataset,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 100,
    batch_size: int = 32,
    criterion: nn.Module | None = None,
    smoothing: float = 0.05,
    stop_factor: float = 4.0,
    freeze_bn: bool = True,
    device: str | torch.device | None = "auto",
    seed: int = 0,
    progress: bool = True,
) -> LRSweep:
    """Sweep the learning rate geometrically from ``start_lr`` to ``end_lr`` over ``steps`` batches.

    ``optimizer`` defaults to AdamW over the trainable parameters; give your own (with
    discriminative param groups, say) to sweep exactly the recipe you will train with: every
    group keeps its ratio to the fastest one, whose rate is the one swept and recorded. The
    data may be images (with their transform) or cached activations (a ``FeatureSet``), and is
    cycled as often as ``steps`` needs. The sweep stops early once the smoothed loss exceeds
    ``stop_factor`` times its lowest value, or the loss is not finite.

    Afterwards the model and the optimizer are exactly as they were: weights and buffers,
    every module's own train/eval flag, the optimizer's state and rates, the device. Only the
    returned :class:`LRSweep` remembers the sweep.
    """
    _check_range(start_lr, end_lr, steps, smoothing, stop_factor)
    if not any(p.requires_grad for p in model.parameters()):
        raise InvalidParameterError(
            "lr_range_test: the model has no trainable parameters, so no rate changes anything. "
            "Unfreeze what you mean to train (at least the head) first."
        )
    if optimizer is None:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=start_lr)
    device = pick_device(device)
    criterion = criterion or nn.CrossEntropyLoss()
    first = next(model.parameters())
    home = first.device
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    top = max(g["lr"] for g in optimizer.param_groups)
    ratios = [g["lr"] / top if top > 0 else 1.0 for g in optimizer.param_groups]
    rates = [start_lr * (end_lr / start_lr) ** (i / (steps - 1)) for i in range(steps)]
    torch.manual_seed(seed)
    with preserving_modes(model):
        try:
            channels_last = _place(model, device, None)
            return _sweep(model, optimizer, _endless_batches(data, batch_size, seed), criterion, device,
                          channels_last, rates, ratios, smoothing, stop_factor, freeze_bn, progress)
        finally:
            model.load_state_dict(saved_model)
            optimizer.load_state_dict(saved_optimizer)
            model.to(home)


__all__ = ["LRSweep", "lr_range_test"]
