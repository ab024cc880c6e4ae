"""The course's one training loop: :func:`fit`, :func:`evaluate` and :class:`History`.

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
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import atomic
from ..device import pick_device
from ..errors import CourseError, InvalidParameterError
from ..safeload import load_plain
from ..models.modes import evaluating, start_training


@dataclass
class History:
    """Per-epoch metrics of one :func:`fit` run."""

    records: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: bool = False
    best_epoch: int | None = None
    label: str = ""

    def __len__(self) -> int:
        return len(self.records)

    def metric(self, key: str) -> list[float]:
        return [r[key] for r in self.records if key in r]

    @property
    def best(self) -> dict[str, float]:
        """The record of the best epoch (lowest validation loss, else the last)."""
        if not self.records:
            raise CourseError("This history is empty: the run stopped before its first epoch ended.")
        if self.best_epoch is None:
            return self.records[-1]
        return next(r for r in self.records if r["epoch"] == self.best_epoch)

    @property
    def final(self) -> dict[str, float]:
        return self.records[-1]

    @property
    def seconds(self) -> float:
        return float(sum(r.get("seconds", 0.0) for r in self.records))

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.records).set_index("epoch") if self.records else pd.DataFrame()

    def __repr__(self) -> str:
        if not self.records:
            return "History(empty)"
        b = self.best
        parts = [f"{len(self)} epochs"]
        if "val_acc" in b:
            parts.append(f"best epoch {b['epoch']}: val_acc {b['val_acc']:.3f}, val_loss {b['val_loss']:.3f}")
        if self.interrupted:
            parts.append("interrupted")
        if self.stopped_early:
            parts.append("stopped early")
        return f"History({'; '.join(parts)})"


def _loader(data: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)


def _amp_context(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype
    return contextlib.nullcontext(), None


def _use_channels_last(model: nn.Module, requested: bool | None) -> bool:
    """Channels-last memory layout: 1.3-2.8x faster convolutions on this course's CPUs (bench/)."""
    if requested is not None:
        return requested
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _check_batch(x: torch.Tensor) -> None:
    if x.dtype == torch.uint8:
        raise CourseError(
            "The dataset returns raw uint8 images. Give it the backbone's preprocessing first: "
            "data.with_transform(tlcourse.data.eval_transform(preprocessing)) (or "
            "train_transform(...) for augmentation)."
        )


#: What a device raises when it runs out of memory (torch < 2.5 has only the CUDA name).
_OOM_ERRORS: tuple[type[BaseException], ...] = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),)


def _is_out_of_memory(exc: BaseException) -> bool:
    # Apple's MPS backend reports exhaustion as a plain RuntimeError.
    return isinstance(exc, _OOM_ERRORS) or (
        isinstance(exc, RuntimeError) and "MPS backend out of memory" in str(exc)
    )


def _out_of_memory(
    device: torch.device, batch_size: int, doing: str, advice: str = "", note: str = ""
) -> CourseError:
    """The error for an exhausted device: what ran out, during what, and the batch size to try.

    Called *outside* the ``except`` block that caught the out-of-memory error, so the new
    error does not keep the old traceback (and, through its frames, the tensors that filled
    the memory) alive in a notebook's ``sys.last_value``.
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()
    half = batch_size // 2
    if not advice:
        advice = (
            f"Use batch_size={half} (half of {batch_size}); halve it again if this repeats."
            if half >= 1
            else "batch_size is already 1: use a smaller image_size or a smaller backbone."
        )
    return CourseError(
        f"Out of memory on {device} while {doing} with batch_size={batch_size}. {advice}{note} "
        "Other models still held by this kernel use memory too: delete them (del model) or "
        "restart the kernel."
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = "auto",
    criterion: nn.Module | None = None,
    progress: bool = False,
    channels_last: bool | None = None,
) -> dict[str, Any]:
    """Loss, accuracy, and every prediction of ``model`` on ``data`` (in eval mode).

    Returns ``{"loss", "acc", "probs" (N, C), "preds" (N,), "labels" (N,)}`` as CPU tensors.
    Running out of device memory raises a :class:`CourseError` suggesting half the batch size.
    """
    device = pick_device(device)
    try:
        return _evaluate(model, data, batch_size, device, criterion, progress, channels_last)
    except Exception as exc:
        if not _is_out_of_memory(exc):
            raise
    raise _out_of_memory(device, batch_size, f"evaluating {len(data)} images")  # see _out_of_memory


@torch.no_grad()
def _evaluate(
    model: nn.Module,
    data: Dataset,
    batch_size: int,
    device: torch.device,
    criterion: nn.Module | None,
    progress: bool,
    channels_last: bool | None,
) -> dict[str, Any]:
    """:func:`evaluate` without the out-of-memory translation (``fit`` adds its own)."""
    criterion = criterion or nn.CrossEntropyLoss()
    channels_last = _use_channels_last(model, channels_last)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    probs, labels, total_loss = [], [], 0.0
    amp, _ = _amp_context(device, True)
    with evaluating(model):
        for x, y in tqdm(_loader(data, batch_size, False, 0), desc="evaluating", disable=not progress, leave=False):
            _check_batch(x)
            x, y = _to_layout(x.to(device, non_blocking=True), channels_last), y.to(device)
            with amp:
                logits = model(x)
            total_loss += float(criterion(logits.float(), y)) * len(y)
            probs.append(logits.float().softmax(1).cpu())
            labels.append(y.cpu())
    if not labels:
        raise CourseError("evaluate() got an empty dataset.")
    p, t = torch.cat(probs), torch.cat(labels)
    preds = p.argmax(1)
    return {"loss": total_loss / len(t), "acc": float((preds == t).float().mean()), "probs": p, "preds": preds, "labels": t}


def _params_missing_from(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[str]:
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    return [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_opt]


def _validate(epochs: int, batch_size: int, lr: float, patience: int | None) -> None:
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise InvalidParameterError(f"epochs must be a positive integer, got {epochs!r}.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise InvalidParameterError(f"lr must be a positive number, got {lr!r}.")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise InvalidParameterError(f"patience must be a positive integer or None, got {patience!r}.")


_CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "history", "rng")


def _load_checkpoint(ckpt: Path, device: torch.device) -> dict[str, Any]:
    """A checkpoint written by :func:`fit`, loaded as tensors and plain data only.

    A checkpoint may have been copied from elsewhere, and a full unpickle would run any code
    hidden in it; what ``fit`` writes (state dicts, numbers, the history) loads weights-only.
    """
    try:
        state = load_plain(ckpt, map_location=device)
    except CourseError as exc:
        raise type(exc)(
            f"Cannot resume: the checkpoint {exc} Resume only from a checkpoint that "
            "fit(checkpoint_path=...) wrote, or train again without resume=True."
        ) from None
    missing = [k for k in _CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CourseError(
            f"Cannot resume from {ckpt}: it is not a checkpoint written by fit (no {', '.join(missing)}). "
            "Pass the checkpoint_path a previous fit wrote, or train again without resume=True."
        )
    return state


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
    amp: bool = True,
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
    """
    _validate(epochs, batch_size, lr, patience)
    device = pick_device(device)
    criterion = criterion or nn.CrossEntropyLoss()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise CourseError(
            "The model has no trainable parameters (every requires_grad is False), so training "
            "would change nothing. Unfreeze at least the new head."
        )
    torch.manual_seed(seed)
    model.to(device)
    channels_last = _use_channels_last(model, channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if optimizer is None:
        optimizer = torch.optim.AdamW(trainable, lr=lr)
    missing = _params_missing_from(optimizer, model)
    if missing:
        warnings.warn(
            f"{len(missing)} trainable parameter tensors are not in the optimizer and will never "
            f"be updated (e.g. {', '.join(missing[:3])}). Was the optimizer built before unfreezing? "
            "Build it after changing requires_grad.",
            stacklevel=2,
        )
    history = History(label=label)
    start_epoch, best_loss, best_state = 1, math.inf, None
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    if resume:
        if ckpt is None or not ckpt.is_file():
            raise CourseError(f"resume=True but there is no checkpoint at {ckpt}. Train once with checkpoint_path set.")
        state = _load_checkpoint(ckpt, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        history.records = list(state["history"])
        history.best_epoch = state.get("best_epoch")
        best_loss, best_state = state.get("best_loss", math.inf), state.get("best_model")
        start_epoch = state["epoch"] + 1
        torch.set_rng_state(state["rng"])
    if start_epoch > epochs:
        return history
    amp_ctx, amp_dtype = _amp_context(device, amp)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    train_loader = _loader(train_data, batch_size, True, seed)
    epochs_without_improvement = 0
    if history.best_epoch is not None:
        epochs_without_improvement = history.records[-1]["epoch"] - history.best_epoch
    epoch_bar = tqdm(range(start_epoch, epochs + 1), desc=label or "epochs", disable=not progress)
    val_batch_size = max(batch_size, 64)
    doing, out_of_memory = "", False
    try:
        for epoch in epoch_bar:
            doing = f"training epoch {epoch}"
            t0 = time.perf_counter()
            train_loader.generator.manual_seed(seed + epoch)
            start_training(model, freeze_bn)
            seen, loss_sum, correct = 0, 0.0, 0
            for x, y in tqdm(train_loader, desc=f"epoch {epoch}", leave=False, disable=not progress):
                _check_batch(x)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                x = _to_layout(x, channels_last)
                optimizer.zero_grad(set_to_none=True)
                with amp_ctx:
                    logits = model(x)
                    loss = criterion(logits.float(), y)
                if not torch.isfinite(loss):
                    raise CourseError(
                        f"The training loss became {float(loss.detach())} at epoch {epoch}: the learning rate "
                        f"(now {optimizer.param_groups[0]['lr']:.2g}) is too high for this setup. Lower it 10x."
                    )
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                seen += len(y)
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.argmax(1) == y).sum())
            record = {
                "epoch": epoch,
                "train_loss": loss_sum / seen,
                "train_acc": correct / seen,
                "lr": float(optimizer.param_groups[0]["lr"]),
            }
            if val_data is not None:
                doing = f"validating epoch {epoch}"
                ev = _evaluate(model, val_data, val_batch_size, device, criterion, False, channels_last)
                record["val_loss"], record["val_acc"] = ev["loss"], ev["acc"]
                if ev["loss"] < best_loss - 1e-6:
                    best_loss, history.best_epoch = ev["loss"], epoch
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                    epochs_without_improvement = 0
                else:
                    epochs_without_improvement += 1
            record["seconds"] = time.perf_counter() - t0
            history.records.append(record)
            epoch_bar.set_postfix({k: round(v, 3) for k, v in record.items() if k.endswith(("loss", "acc"))})
            if ckpt is not None:
                atomic.torch_save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "epoch": epoch,
                        "history": history.records,
                        "best_epoch": history.best_epoch,
                        "best_loss": best_loss,
                        "best_model": best_state,
                        "rng": torch.get_rng_state(),
                    },
                    ckpt,
                )
            if on_epoch_end is not None:
                on_epoch_end(record)
            if patience is not None and epochs_without_improvement >= patience:
                history.stopped_early = True
                break
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn(
            f"Training interrupted after {len(history)} epoch(s); returning the history so far"
            + (f" (checkpoint: {ckpt}; continue with resume=True)." if ckpt else "."),
            stacklevel=2,
        )
    except Exception as exc:
        if not _is_out_of_memory(exc):
            raise
        out_of_memory = True
    finally:
        epoch_bar.close()
    if out_of_memory:  # raised outside the except block: see _out_of_memory
        saved = (f" The checkpoint of epoch {history.records[-1]['epoch']} is in {ckpt}: continue "
                 "from it with resume=True." if ckpt is not None and history.records else "")
        if doing.startswith("validating"):
            advice = (f"Validation runs in batches of max(batch_size, 64) = {val_batch_size} images"
                      + (f"; use batch_size={batch_size // 2}." if batch_size > 64 else
                         ", which needs less memory than training; use a smaller image_size."))
            raise _out_of_memory(device, batch_size, doing, advice, saved)
        raise _out_of_memory(device, batch_size, doing, note=saved)
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history


def predict(model: nn.Module, data: Dataset, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities ``(N, C)`` and true labels of ``data``."""
    out = evaluate(model, data, **kwargs)
    return out["probs"], out["labels"]


def accuracy(probs_or_preds: torch.Tensor, labels: torch.Tensor) -> float:
    preds = probs_or_preds.argmax(1) if probs_or_preds.ndim == 2 else probs_or_preds
    return float((preds == labels).float().mean())


def iterate_batches(data: Dataset, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic, unshuffled batches (for feature extraction and plots)."""
    return _loader(data, batch_size, False, 0)


