"""Test-time augmentation: ask the network about a photo and its mirror image(s), average the answers.

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

    ``upside_down=True`` averages four views: the photo, its mirror image, and both flipped
    top-bottom. Only worth it for a model trained with those flips (``augmentation="flip"``,
    or ``"flips"`` for four views) on images whose flipped versions belong to the same class:
    leaves photographed from above, yes; digits or road signs with arrows, no.
    """

    def __init__(self, model: nn.Module, *, upside_down: bool = False) -> None:
        super().__init__()
        self.model = model
        self.upside_down = upside_down
        # a new Module starts in train mode; start in the wrapped model's mode instead, or code
        # that restores "the mode it found" (evaluate, export) would switch the model to train
        adopt_mode(self, model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = [x, torch.flip(x, dims=(3,))]
        if self.upside_down:
            views += [torch.flip(x, dims=(2,)), torch.flip(x, dims=(2, 3))]
        if torch.compiler.is_exporting():
            # one call on all views stacked: torch.export traces the network once, not once per
            # view (the exported file and its load time stay those of the plain model)
            logits = self.model(torch.cat(views)).unflatten(0, (len(views), -1))
            probs = logits.softmax(2).mean(0)
        else:
            # one call per view: on a CPU the smaller batches run faster than one of all views
            probs = sum(self.model(v).softmax(1) for v in views) / len(views)
        # a probability that underflowed to 0 would give -inf and an infinite loss
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def extra_repr(self) -> str:
        return "views=4 (photo, mirror, upside down, both)" if self.upside_down else "views=2 (photo, mirror)"


__all__ = ["FlipAverage"]
