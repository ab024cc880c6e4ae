"""One epoch of training and one pass of evaluation, and the batch plumbing they share.

:func:`train_one_epoch` and :func:`evaluate` work on their own (a lesson can write its own
loop around them); :func:`tlcourse.train.fit` composes them with checkpoints and early
stopping. What they share:

- mixed precision (:mod:`tlcourse.precision`): on CUDA bfloat16 where the GPU has it, else float16
  with a gradient scaler; on a CPU with bfloat16 units when asked (``amp="bfloat16"``);
- the channels-last memory layout for convolutional models;
- train/eval modes set through :mod:`tlcourse.models.modes` (frozen BatchNorm stays in eval);
- a clear error for raw uint8 batches, and for a device that runs out of memory.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import precision
from ..device import pick_device
from ..errors import CourseError
from ..models.modes import evaluating, start_training

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def _loader(data: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)


def _grad_scaler(device: torch.device, amp: bool | str) -> torch.amp.GradScaler | None:
    """A loss scaler for float16 autocast, whose small gradients would underflow; bfloat16 needs none."""
    return torch.amp.GradScaler("cuda") if precision.autocast_dtype(device, amp) == torch.float16 else None


def _use_channels_last(model: nn.Module, requested: bool | None) -> bool:
    """Channels-last memory layout: 1.3-2.8x faster convolutions on this course's CPUs (bench/)."""
    if requested is not None:
        return requested
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _place(model: nn.Module, device: torch.device, channels_last: bool | None) -> bool:
    """Move ``model`` to ``device`` (channels-last if asked or convolutional); return that choice."""
    channels_last = _use_channels_last(model, channels_last)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return channels_last


def _to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


#: On a CPU, an inference pass over a batch of images whose early activations outgrow the
#: processor's caches runs 2-3x slower per image than over a few images at a time (MobileNetV2's
#: stages up to stage2 at 128 px: about 1.3 ms an image in pieces of 8-16, 3.5-4 ms in one batch
#: of 64; ``bench/bench_cpu_pieces.py``). :func:`forward_in_pieces` splits a batch into pieces of
#: at most this many input pixels (16 images of 128 x 128) on the CPU; GPUs keep whole batches.
CPU_PIXELS_PER_PASS = 16 * 128 * 128


def forward_in_pieces(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``model(x)`` for inference, run over pieces of the batch on the CPU (the same outputs:
    in eval mode no sample's output depends on the others in its batch)."""
    if device.type != "cpu" or x.ndim != 4:
        return model(x)
    piece = max(1, CPU_PIXELS_PER_PASS // (x.shape[-2] * x.shape[-1]))
    if len(x) <= piece:
        return model(x)
    return torch.cat([model(part) for part in x.split(piece)])


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


def _check_finite(loss: torch.Tensor, epoch: int, optimizer: torch.optim.Optimizer) -> None:
    if not torch.isfinite(loss):
        raise CourseError(
            f"The training loss became {float(loss.detach())} at epoch {epoch}: the learning rate "
            f"(now {optimizer.param_groups[0]['lr']:.2g}) is too high for this setup. Lower it 10x."
        )


def _step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Backward and optimizer step, through the loss scaler when float16 autocast needs one."""
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def train_one_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    *,
    criterion: nn.Module | None = None,
    device: str | torch.device | None = "auto",
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    amp: bool | str = True,
    scaler: torch.amp.GradScaler | None = None,
    freeze_bn: bool = True,
    channels_last: bool | None = None,
    epoch: int = 1,
    progress: bool = False,
) -> dict[str, float]:
    """One pass over ``batches`` (a DataLoader, or any iterable of ``(images, labels)``).

    Puts the model in train mode with the BatchNorm layers of frozen stages kept in eval
    (``freeze_bn``: otherwise a "frozen" backbone's running statistics drift), and leaves it
    so. ``scheduler`` is stepped after every optimizer step, as per-step warm-up and cosine
    schedules need. ``amp``: see :mod:`tlcourse.precision`. With float16 autocast (CUDA without
    bfloat16) pass a ``scaler`` that lives across epochs, as ``fit`` does; without one, this
    epoch gets a fresh one.

    Returns ``{"train_loss", "train_acc", "lr"}``: loss and accuracy averaged over the epoch's
    images (measured as the weights moved) and the first param group's rate at the end. A
    loss that becomes inf or NaN stops with a :class:`CourseError` (the rate is too high).
    """
    device = pick_device(device)
    criterion = criterion or nn.CrossEntropyLoss()
    channels_last = _place(model, device, channels_last)
    autocast = precision.autocast(device, amp)
    scaler = scaler if scaler is not None else _grad_scaler(device, amp)
    start_training(model, freeze_bn)
    seen, loss_sum, correct = 0, 0.0, 0
    with precision.cpu_float32_where_slow(model, device, amp):
        for x, y in tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=not progress):
            _check_batch(x)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = _to_layout(x, channels_last)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                logits = model(x)
                loss = criterion(logits.float(), y)
            _check_finite(loss, epoch, optimizer)
            _step(loss, optimizer, scaler)
            if scheduler is not None:
                scheduler.step()
            seen += len(y)
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
    if not seen:
        raise CourseError("There is nothing to train on: the batches held no images (is the training data empty?).")
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "lr": float(optimizer.param_groups[0]["lr"])}


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
    amp: bool | str = True,
) -> dict[str, Any]:
    """Loss, accuracy, and every prediction of ``model`` on ``data`` (in eval mode).

    Returns ``{"loss", "acc", "probs" (N, C), "preds" (N,), "labels" (N,)}`` as CPU tensors.
    The model's train/eval flags are restored afterwards, module by module. Running out of
    device memory raises a :class:`CourseError` suggesting half the batch size. ``amp``: see
    :mod:`tlcourse.precision`.
    """
    device = pick_device(device)
    try:
        return _evaluate(model, data, batch_size, device, criterion, progress, channels_last, amp)
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
    amp: bool | str = True,
) -> dict[str, Any]:
    """:func:`evaluate` without the out-of-memory translation (``fit`` adds its own)."""
    criterion = criterion or nn.CrossEntropyLoss()
    channels_last = _place(model, device, channels_last)
    probs, labels, total_loss = [], [], 0.0
    autocast = precision.autocast(device, amp)
    with evaluating(model):
        for x, y in tqdm(_loader(data, batch_size, False, 0), desc="evaluating", disable=not progress, leave=False):
            _check_batch(x)
            x, y = _to_layout(x.to(device, non_blocking=True), channels_last), y.to(device)
            with autocast:
                logits = forward_in_pieces(model, x, device)
            total_loss += float(criterion(logits.float(), y)) * len(y)
            probs.append(logits.float().softmax(1).cpu())
            labels.append(y.cpu())
    if not labels:
        raise CourseError("evaluate() got an empty dataset.")
    p, t = torch.cat(probs), torch.cat(labels)
    preds = p.argmax(1)
    return {"loss": total_loss / len(t), "acc": float((preds == t).float().mean()), "probs": p, "preds": preds, "labels": t}


def predict(model: nn.Module, data: Dataset, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities ``(N, C)`` and true labels of ``data``."""
    out = evaluate(model, data, **kwargs)
    return out["probs"], out["labels"]


def accuracy(probs_or_preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction right, from class probabilities ``(N, C)`` or predicted classes ``(N,)``."""
    preds = probs_or_preds.argmax(1) if probs_or_preds.ndim == 2 else probs_or_preds
    return float((preds == labels).float().mean())


def iterate_batches(data: Dataset, batch_size: int) -> Batches:
    """Deterministic, unshuffled batches (for feature extraction and plots)."""
    return _loader(data, batch_size, False, 0)


__all__ = ["accuracy", "evaluate", "iterate_batches", "predict", "train_one_epoch"]
