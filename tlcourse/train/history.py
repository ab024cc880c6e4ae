"""What a training run leaves behind: one record of metrics per epoch, and how the run ended."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CourseError


@dataclass
class History:
    """Per-epoch metrics of one :func:`~tlcourse.train.fit` run."""

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


__all__ = ["History"]
