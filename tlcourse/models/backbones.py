"""Backbone + new head for C classes, and the model surgery of transfer learning by stage.

What each architecture is (its weights, preprocessing, head and stages) is recorded in
:mod:`tlcourse.models.registry`; the functions here work on any model built from it: replace
the head, list the stages and their parameters, run the forward pass stage by stage, split
the network at a stage boundary.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .._checks import int_at_least
from ..errors import CourseError, unknown_name
from .modes import evaluating
from .preprocessing import Preprocessing
from .registry import get_spec, load_backbone, spec_for


def _get(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    setattr(owner, leaf, module)


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, in the order of the pretrained heads' outputs."""
    from torchvision.models import MobileNet_V2_Weights

    return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def get_head(model: nn.Module) -> nn.Linear:
    return _get(model, spec_for(model).head)  # type: ignore[return-value]


def feature_dim(model: nn.Module) -> int:
    """Width of the penultimate (pooled) features that the head reads."""
    head = get_head(model)
    if isinstance(head, nn.Linear):
        return head.in_features
    return int(getattr(model, "tlcourse_feature_dim"))


def replace_head(model: nn.Module, head: nn.Module) -> nn.Module:
    """Put ``head`` where the ImageNet classifier was; returns the model for chaining."""
    spec = spec_for(model)
    old = _get(model, spec.head)
    if isinstance(old, nn.Linear):
        model.tlcourse_feature_dim = old.in_features  # type: ignore[assignment]
    _set(model, spec.head, head)
    return model


def _seeded_linear(dim: int, num_classes: int, seed: int | None) -> nn.Linear:
    """A new head, initialised from ``seed`` when given, leaving torch's global random state as it was."""
    if seed is None:
        return nn.Linear(dim, num_classes)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return nn.Linear(dim, num_classes)
    finally:
        torch.random.set_rng_state(state)


def create_model(
    name: str, num_classes: int, pretrained: bool = True, seed: int | None = 0
) -> tuple[nn.Module, Preprocessing]:
    """A backbone with a new, randomly initialised ``num_classes``-way linear head.

    Returns the model and the :class:`Preprocessing` it expects (the equivalent of
    ``weights.transforms()``). The new head is seeded so runs are repeatable.
    """
    num_classes = int_at_least(num_classes, "num_classes", 2, hint="A classifier needs at least two classes.")
    model = load_backbone(name, pretrained=pretrained)
    dim = feature_dim(model)
    head = _seeded_linear(dim, num_classes, seed)
    replace_head(model, head)
    return model, get_spec(name).preprocessing


def stage_names(model: nn.Module) -> list[str]:
    """Stage names from input to output, followed by ``"head"``."""
    return [name for name, _ in spec_for(model).stages] + ["head"]


def stage_modules(model: nn.Module) -> "OrderedDict[str, list[nn.Module]]":
    """Stage name -> the modules in it (the head last)."""
    spec = spec_for(model)
    out: OrderedDict[str, list[nn.Module]] = OrderedDict()
    for name, paths in spec.stages:
        out[name] = [_get(model, p) for p in paths]
    out["head"] = [_get(model, spec.head)]
    return out


def stage_of_parameters(model: nn.Module) -> "OrderedDict[str, str]":
    """Parameter name -> stage name, for every parameter of the model."""
    spec = spec_for(model)
    prefixes = [(p, name) for name, paths in spec.stages for p in paths] + [(spec.head, "head")]
    out: OrderedDict[str, str] = OrderedDict()
    for pname, _ in model.named_parameters():
        stage = next((s for p, s in prefixes if pname == p or pname.startswith(p + ".")), None)
        if stage is None:
            raise CourseError(f"Parameter {pname} belongs to no stage of {spec.name}; report this.")
        out[pname] = stage
    return out


def stage_sequence(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """The forward pass as stage-sized modules: running them in order equals ``model(x)``.

    The last entry, ``"head"``, pools, flattens and classifies. The modules are the model's
    own (not copies), so training a slice trains the model. Used to cache activations at a
    stage boundary, to look at feature maps, and for layer-wise probes.
    """
    spec = spec_for(model)
    return spec.sequence(spec, model)


def split_at(model: nn.Module, boundary: str) -> tuple[nn.Sequential, nn.Sequential]:
    """Split the model after stage ``boundary`` into ``(bottom, top)``.

    ``top(bottom(x)) == model(x)``. With the bottom frozen, its output can be computed once and
    cached; training then runs forward and backward through the top alone.
    """
    seq = stage_sequence(model)
    names = list(seq)
    if boundary not in names[:-1]:
        raise unknown_name("stage boundary", boundary, names[:-1])
    cut = names.index(boundary) + 1
    bottom = nn.Sequential(OrderedDict((n, seq[n]) for n in names[:cut]))
    top = nn.Sequential(OrderedDict((n, seq[n]) for n in names[cut:]))
    return bottom, top


class Dropped(nn.Identity):
    """A stage removed by :func:`cut_after`: passes its input through, whatever else it is given
    (EfficientNet's blocks are called with a ``drop_connect_rate``)."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return x


def drop_above(model: nn.Module, stage: str) -> list[str]:
    """Replace every stage above ``stage`` by :class:`Dropped` (in place); returns their names.

    Their parameters leave the model, so they are neither trained, counted nor exported.
    """
    spec = spec_for(model)
    names = [name for name, _ in spec.stages]
    if stage not in names:
        raise unknown_name("stage", stage, names)
    above = spec.stages[names.index(stage) + 1:]
    for _, paths in above:
        for path in paths:
            _set(model, path, Dropped())
    return [name for name, _ in above]


def cut_after(model: nn.Module, stage: str, num_classes: int, seed: int | None = 0) -> nn.Module:
    """Keep the stages up to ``stage``, drop the ones above it, and read a new head from there.

    For photos unlike ImageNet's, the top stages' features are the most ImageNet-specific and
    an earlier stage's can separate the new classes better (a linear probe per stage shows
    it: :func:`tlcourse.features.probe_stages`). Each dropped stage becomes an identity (:class:`Dropped`)
    (for MobileNetV2's top: ``model.features[18] = nn.Identity()``), so the model keeps its
    structure, its stage names and its forward pass, now pooling ``stage``'s output into a
    new seeded ``num_classes``-way linear head (EfficientNet-Lite0's head applies its ReLU6 to
    that output before pooling, as it did to the top's). Changes ``model`` in place and returns it.
    """
    num_classes = int_at_least(num_classes, "num_classes", 2, hint="A classifier needs at least two classes.")
    drop_above(model, stage)
    probe = torch.zeros(1, 3, 64, 64, device=next(model.parameters()).device)
    with torch.no_grad(), evaluating(model):
        dim = pooled_features(model, probe).shape[1]
    head = _seeded_linear(dim, num_classes, seed)
    return replace_head(model, head)


def pooled_features(model: nn.Module, images: torch.Tensor, *, after: str | None = None) -> torch.Tensor:
    """Penultimate features: everything but the final linear layer (global-average pooled).

    ``after="stage3"``: ``images`` are the activations after that stage (as cached by
    ``extract_features(..., stage="stage3")``) and only the stages above it run.
    """
    seq = stage_sequence(model)
    names = list(seq)
    if after is not None and after not in names[:-1]:
        raise unknown_name("stage", after, names[:-1])
    x = images
    for name in names[names.index(after) + 1 if after else 0:-1]:
        x = seq[name](x)
    return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__: list[str] = [
    "count_parameters",
    "create_model",
    "cut_after",
    "drop_above",
    "feature_dim",
    "get_head",
    "imagenet_categories",
    "pooled_features",
    "replace_head",
    "split_at",
    "stage_modules",
    "stage_names",
    "stage_of_parameters",
    "stage_sequence",
]
