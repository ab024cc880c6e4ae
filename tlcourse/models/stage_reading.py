"""A head that reads several stages at once: their pooled outputs, concatenated.

For photos unlike ImageNet's, the top stages' features are the most ImageNet-specific, and a
stage or two below can separate the new classes better; often no single stage is best, and
the pooled outputs of several neighbouring stages together (textures from one, parts from the
next) beat each of them alone. :class:`ReadStages` builds that classifier from a course model:
it runs the stages in order up to the last one read, global-average-pools each stage it reads,
concatenates them and gives the result to the model's own head, now a new linear layer of the
matching width. The stages above the last one read are dropped
(:func:`tlcourse.models.backbones.drop_above`), so they are neither trained nor exported.

With ``symmetry="mirror"`` an evaluating model (``.eval()``) pools the photo and its mirror image
and averages the two feature vectors before the head; with ``"flips"`` it also averages the photo
upside down and turned half a circle (both flips): test-time augmentation for photos whose class
those flips do not change (leaves, cells, defects; not digits, text or road signs). Training
(``.train()``) sees one view; the training transform's random flips cover the rest.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .._checks import int_at_least
from ..errors import CourseError, unknown_name
from .backbones import _seeded_linear, drop_above, replace_head, spec_for, stage_sequence
from .modes import adopt_mode, evaluating


#: The flips (tensor dims of an (N, C, H, W) batch) averaged with the photo, by ``symmetry``.
FLIPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": (),
    "mirror": ((-1,),),  # left-right
    "flips": ((-1,), (-2,), (-2, -1)),  # left-right, top-bottom, both (turned half a circle)
}


class ReadStages(nn.Module):
    """``head(concat(pool(stage_a), pool(stage_b), ...))`` over a course model's own stages.

    ``model`` (changed in place, kept as ``.model``): a model from
    :func:`tlcourse.models.create_model`. Its stages keep their names and parameters, so
    :func:`tlcourse.models.stage_modules` and :func:`tlcourse.models.get_head` work on
    ``.model`` as on any course model (freezing, unfreezing, parameter groups).
    """

    def __init__(self, model: nn.Module, stages: Sequence[str], num_classes: int, *,
                 symmetry: str = "mirror", seed: int | None = 0) -> None:
        super().__init__()
        names = [name for name, _ in spec_for(model).stages]
        if isinstance(stages, str) or not stages:
            raise CourseError(f"Give the stages to read as a list of names, e.g. {names[-4:-1]}.")
        for stage in stages:
            if stage not in names:
                raise unknown_name("stage", stage, names)
        if len(set(stages)) != len(stages):
            raise CourseError(f"Each stage can be read once; got {list(stages)}.")
        num_classes = int_at_least(num_classes, "num_classes", 2, hint="A classifier needs at least two classes.")
        self.stages = sorted(stages, key=names.index)  # forward order, whatever order they came in
        if symmetry not in FLIPS:
            raise unknown_name("symmetry", symmetry, list(FLIPS))
        self.symmetry = symmetry
        drop_above(model, self.stages[-1])
        self.model = model
        adopt_mode(self, model)
        with torch.no_grad(), evaluating(model):
            probe = torch.zeros(1, 3, 64, 64, device=next(model.parameters()).device)
            dim = self._pooled(stage_sequence(model), probe).shape[1]
        replace_head(model, _seeded_linear(dim, num_classes, seed))

    def _pooled(self, seq: "OrderedDict[str, nn.Module]", x: torch.Tensor) -> torch.Tensor:
        last = self.stages[-1]
        pooled = []
        for name, stage in seq.items():
            x = stage(x)
            if name in self.stages:
                pooled.append(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
            if name == last:
                return torch.cat(pooled, 1)
        raise AssertionError("unreachable: the last stage read is one of the model's stages")

    def _features(self, seq: "OrderedDict[str, nn.Module]", x: torch.Tensor) -> torch.Tensor:
        f = self._pooled(seq, x)
        if self.training or not FLIPS[self.symmetry]:
            return f
        for dims in FLIPS[self.symmetry]:
            f = f + self._pooled(seq, torch.flip(x, dims=dims))
        return f / (1 + len(FLIPS[self.symmetry]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The vector the head reads: pooled stages, concatenated (averaged over the flips when evaluating)."""
        return self._features(stage_sequence(self.model), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the model's own modules, looked up once per call (so a deep copy runs its own)
        seq = stage_sequence(self.model)
        return seq["head"](self._features(seq, x)[:, :, None, None])  # head: pool (of 1 x 1), flatten, dropout, linear

    def extra_repr(self) -> str:
        return f"stages={self.stages}, symmetry={self.symmetry!r}"


__all__ = ["FLIPS", "ReadStages"]
