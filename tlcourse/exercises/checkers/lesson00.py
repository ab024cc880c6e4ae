"""Checkers for lesson 00 (the golden rule): reading what ``fit`` gave back.

``fit`` keeps the weights of the epoch with the lowest *validation loss* and puts them back at
the end; the test numbers of lesson 00 are that epoch's. Learners easily assume it was the
highest validation accuracy, or the last epoch: :func:`restored_epoch` names which they picked.
"""
from __future__ import annotations

from typing import Any

from ..feedback import Feedback
from .common import number
from .registry import register_checker


def _records(history: Any) -> list[dict] | Feedback:
    records = getattr(history, "records", None)
    if not isinstance(records, list) or not records:
        return Feedback(False, f"Pass the History that fit returned (history=...), got a {type(history).__name__}.")
    if not all(isinstance(r, dict) and "val_loss" in r and "epoch" in r for r in records):
        return Feedback(False, "This history has no validation loss per epoch: was fit given validation data?")
    return records


@register_checker
def restored_epoch(epoch: Any, history: Any) -> Feedback:
    """``epoch`` is the epoch whose weights ``fit`` restored: the lowest validation loss."""
    records = _records(history)
    if isinstance(records, Feedback):
        return records
    value = number(epoch, "epoch")
    if isinstance(value, Feedback):
        return value
    by_loss = min(records, key=lambda r: r["val_loss"])
    if value == by_loss["epoch"]:
        return Feedback(
            True,
            f"Epoch {by_loss['epoch']}: validation loss {by_loss['val_loss']:.3f}, the lowest of "
            f"{len(records)} epochs. Those are the weights the model holds now.",
        )
    picked = next((r for r in records if r["epoch"] == value), None)
    if picked is None:
        return Feedback(False, f"This run has epochs {records[0]['epoch']} to {records[-1]['epoch']}; there is no epoch {value:g}.")
    by_acc = max(records, key=lambda r: r.get("val_acc", float("-inf")))
    if picked is by_acc:
        why = (
            "that is the epoch with the highest validation accuracy. fit keeps the lowest validation "
            "loss, which also counts how confident the wrong answers are"
        )
    elif picked is records[-1]:
        why = "that is the last epoch. fit puts back the weights of its best epoch when it ends (restore_best=True)"
    else:
        why = "fit compares the validation loss of every epoch"
    return Feedback(False, f"Not epoch {value:g}: {why}. Look at the val_loss column.")


__all__ = ["restored_epoch"]
