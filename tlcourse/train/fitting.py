"""The course's one training loop, :func:`fit`: epochs of :func:`train_one_epoch` and :func:`evaluate`.

Every lesson trains with the same loop, so differences between experiments come from the
idea being taught (what is frozen, which rates), never from loop details. The loop:

- picks the device (CUDA, MPS, CPU) and uses mixed precision on CUDA;
- keeps BatchNorm layers of frozen stages in eval mode (``freeze_bn``), since ``model.train()``
  would otherwise let a "frozen" backbone's running statistics drift;
- records train/val loss and accuracy per epoch, stops early on validation loss and restores
  the best weights;
- writes a checkpoint atomically after every epoch (when ``checkpoint_path`` is given) and can
  ``resume`` from it; on KeyboardInterrupt it stops cleanly and returns the history so far;
- is seeded: on a CPU the same seed gives the same numbers.

(The module is ``fitting``, not ``fit``, so that ``tlcourse.train.fit`` is only ever the function.)
"""
from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .._checks import int_at_least, positive_number
from ..device import pick_device
from ..errors import CourseError
from .checkpoint import resume_from, save_checkpoint
from .history import History
from .loop import _evaluate, _grad_scaler, _is_out_of_memory, _loader, _out_of_memory, _place, train_one_epoch

#: A validation loss must beat the best one by more than this to count as an improvement.
_MIN_IMPROVEMENT = 1e-6


@dataclass
class _Best:
    """Early stopping's memory: the lowest validation loss, that epoch's weights, epochs since."""

    loss: float = math.inf
    state: dict[str, torch.Tensor] | None = None
    stale: int = 0

    def update(self, val_loss: float, model: nn.Module) -> bool:
        """Count this epoch's validation loss; True (and the weights kept) when it is the best."""
        if val_loss < self.loss - _MIN_IMPROVEMENT:
            self.loss, self.stale = val_loss, 0
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            return True
        self.stale += 1
        return False


@dataclass
class _Run:
    """One ``fit`` call: what every epoch trains with, and where the run stands."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    criterion: nn.Module
    device: torch.device
    channels_last: bool
    amp: bool | str
    scaler: torch.amp.GradScaler | None
    freeze_bn: bool
    progress: bool
    seed: int
    loader: DataLoader
    val_data: Dataset | None
    val_batch_size: int
    history: History
    checkpoint: Path | None
    best: _Best = field(default_factory=_Best)
    doing: str = ""  # what the run was doing, for an out-of-memory message


def _validate(epochs: int, batch_size: int, lr: float, patience: int | None) -> None:
    int_at_least(epochs, "epochs", 1)
    int_at_least(batch_size, "batch_size", 1)
    positive_number(lr, "lr")
    if patience is not None:
        int_at_least(patience, "patience", 1, hint="Or None to train every epoch.")


def _check_not_empty(train_data: Dataset) -> None:
    """Refuse an empty training set up front (torch's sampler would fail with its own words)."""
    if isinstance(train_data, Sized) and len(train_data) == 0:
        raise CourseError(
            "There is nothing to train on: train_data is empty (0 images). Check the split, "
            "filter or take_per_class(...) call that built it."
        )


def _params_missing_from(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[str]:
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    return [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_opt]


def _prepare(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, lr: float, device: torch.device,
    seed: int, channels_last: bool | None,
) -> tuple[torch.optim.Optimizer, bool]:
    """Seed, place the model, and build (or check) the optimizer over its trainable parameters."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise CourseError(
            "The model has no trainable parameters (every requires_grad is False), so training "
            "would change nothing. Unfreeze at least the new head."
        )
    torch.manual_seed(seed)
    channels_last = _place(model, device, channels_last)
    if optimizer is None:
        optimizer = torch.optim.AdamW(trainable, lr=lr)
    missing = _params_missing_from(optimizer, model)
    if missing:
        warnings.warn(
            f"{len(missing)} trainable parameter tensors are not in the optimizer and will never "
            f"be updated (e.g. {', '.join(missing[:3])}). Was the optimizer built before unfreezing? "
            "Build it after changing requires_grad.",
            stacklevel=3,  # the caller of fit
        )
    return optimizer, channels_last


def _resume(run: _Run) -> int:
    """Continue from ``run.checkpoint``: weights, optimizer, history, early stopping; next epoch."""
    start_epoch, run.best.loss, run.best.state = resume_from(
        run.checkpoint, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
        history=run.history, device=run.device,
    )
    if run.history.best_epoch is not None:
        run.best.stale = run.history.records[-1]["epoch"] - run.history.best_epoch
    return start_epoch


def _epoch(run: _Run, epoch: int) -> dict[str, float]:
    """Train one epoch, then validate (tracking the best epoch); the epoch's record."""
    run.doing = f"training epoch {epoch}"
    t0 = time.perf_counter()
    run.loader.generator.manual_seed(run.seed + epoch)  # the same batch order for this epoch on resume
    record: dict[str, float] = {"epoch": epoch}
    record.update(train_one_epoch(
        run.model, run.loader, run.optimizer, criterion=run.criterion, device=run.device,
        scheduler=run.scheduler, amp=run.amp, scaler=run.scaler, freeze_bn=run.freeze_bn,
        channels_last=run.channels_last, epoch=epoch, progress=run.progress,
    ))
    if run.val_data is not None:
        run.doing = f"validating epoch {epoch}"
        ev = _evaluate(run.model, run.val_data, run.val_batch_size, run.device, run.criterion, False,
                       run.channels_last, run.amp)
        record["val_loss"], record["val_acc"] = ev["loss"], ev["acc"]
        if run.best.update(ev["loss"], run.model):
            run.history.best_epoch = epoch
    record["seconds"] = time.perf_counter() - t0
    run.history.records.append(record)
    return record


def _save(run: _Run, epoch: int) -> None:
    if run.checkpoint is not None:
        save_checkpoint(
            run.checkpoint, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, epoch=epoch,
            history=run.history, best_loss=run.best.loss, best_state=run.best.state,
        )


def _fit_out_of_memory(run: _Run, batch_size: int) -> CourseError:
    """The out-of-memory error of a fit: where it happened, the checkpoint to resume from."""
    records = run.history.records
    saved = (f" The checkpoint of epoch {records[-1]['epoch']} is in {run.checkpoint}: continue "
             "from it with resume=True." if run.checkpoint is not None and records else "")
    if not run.doing.startswith("validating"):
        return _out_of_memory(run.device, batch_size, run.doing, note=saved)
    advice = (f"Validation runs in batches of max(batch_size, 64) = {run.val_batch_size} images"
              + (f"; use batch_size={batch_size // 2}." if batch_size > 64 else
                 ", which needs less memory than training; use a smaller image_size."))
    return _out_of_memory(run.device, batch_size, run.doing, advice, saved)


def fit(
    model: nn.Module,
    train_data: Dataset,
    val_data: Dataset | None = None,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 32,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    criterion: nn.Module | None = None,
    device: str | torch.device | None = "auto",
    patience: int | None = None,
    restore_best: bool = True,
    freeze_bn: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int = 0,
    amp: bool | str = True,
    progress: bool = True,
    label: str = "",
    channels_last: bool | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> History:
    """Train ``model`` on ``train_data``; validate on ``val_data`` after each epoch.

    ``optimizer`` defaults to AdamW over the trainable parameters at ``lr``. ``scheduler``, if
    given, is stepped after every optimizer step (per batch), which is what warm-up and cosine
    schedules over a known number of steps need. ``patience`` stops when validation loss has
    not improved for that many epochs; ``restore_best`` then loads the best epoch's weights.
    ``amp``: the number format of the forward passes (:mod:`tlcourse.precision`; True: mixed
    precision on CUDA, ``"bfloat16"``: on a CPU with bfloat16 units too).
    """
    _validate(epochs, batch_size, lr, patience)
    _check_not_empty(train_data)
    device = pick_device(device)
    optimizer, channels_last = _prepare(model, optimizer, lr, device, seed, channels_last)
    run = _Run(
        model=model, optimizer=optimizer, scheduler=scheduler, criterion=criterion or nn.CrossEntropyLoss(),
        device=device, channels_last=channels_last, amp=amp, scaler=_grad_scaler(device, amp),
        freeze_bn=freeze_bn, progress=progress, seed=seed, loader=_loader(train_data, batch_size, True, seed),
        val_data=val_data, val_batch_size=max(batch_size, 64), history=History(label=label),
        checkpoint=Path(checkpoint_path) if checkpoint_path else None,
    )
    start_epoch = _resume(run) if resume else 1
    if start_epoch > epochs:
        return run.history
    epoch_bar = tqdm(range(start_epoch, epochs + 1), desc=label or "epochs", disable=not progress)
    out_of_memory = False
    try:
        for epoch in epoch_bar:
            record = _epoch(run, epoch)
            epoch_bar.set_postfix({k: round(v, 3) for k, v in record.items() if k.endswith(("loss", "acc"))})
            _save(run, epoch)
            if on_epoch_end is not None:
                on_epoch_end(record)
            if patience is not None and run.best.stale >= patience:
                run.history.stopped_early = True
                break
    except KeyboardInterrupt:
        run.history.interrupted = True
        warnings.warn(
            f"Training interrupted after {len(run.history)} epoch(s); returning the history so far"
            + (f" (checkpoint: {run.checkpoint}; continue with resume=True)." if run.checkpoint else "."),
            stacklevel=2,
        )
    except Exception as exc:
        if not _is_out_of_memory(exc):
            raise
        out_of_memory = True
    finally:
        epoch_bar.close()
    if out_of_memory:  # raised outside the except block: see loop._out_of_memory
        raise _fit_out_of_memory(run, batch_size)
    if restore_best and run.best.state is not None:
        model.load_state_dict(run.best.state)
    return run.history


__all__ = ["fit"]
