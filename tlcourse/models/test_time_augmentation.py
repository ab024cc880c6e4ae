"""Test-time augmentation: ask the network about a photo and its mirror image, average the answers.

Training with random flips teaches the network that a mirrored leaf is the same leaf, but it
does not make its predictions exactly mirror-symmetric: for a photo near a decision boundary
the photo and its mirror can get different answers. Averaging the two probability vectors
smooths over that and, on the plant task, usually adds a little accuracy for twice the
inference cost. Decide whether to use it on the *validation* split, like any other choice.

:class:`FlipAverage` wraps a classifier so that evaluation, export and ``tlcourse predict``
see one ordinary model: it returns the log of the averaged probabilities, so ``softmax`` of
its output is that average, its ``argmax`` is the averaged prediction and cross-entropy on it
is the loss of the average.
"""
from __future__ import annotations

import torch
from torch import nn

from .modes import adopt_mode


class FlipAverage(nn.Module):
    """``log((softmax(model(x)) + softmax(model(x mirrored left-right))) / 2)``.

    Only worth it for a model trained with horizontal flips (``augmentation="flip"`` or
    stronger) on images whose mirror image belongs to the same class: leaves, yes; digits or
    road signs with arrows, no.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        # a new Module starts in train mode; start in the wrapped model's mode instead, or code
        # that restores "the mode it found" (evaluate, export) would switch the model to train
        adopt_mode(self, model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = (self.model(x).softmax(1) + self.model(torch.flip(x, dims=(3,))).softmax(1)) / 2
        # a probability that underflowed to 0 would give -inf and an infinite loss
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


__all__ = ["FlipAverage"]
