"""Checkers for lesson 02 (pretrained models): their preprocessing, and a new head on one.

:func:`preprocess_function` grades a learner's hand-written version of ``weights.transforms()``.
Wrong preprocessing never raises an error in PyTorch - the network just sees inputs on the
wrong scale and quietly does worse - so the feedback has to say *which* mistake was made. The
checker runs the learner's function on real photos of different shapes and compares the result
with the reference recipe and with each typical mistake applied to it (no division by 255, no
normalisation, another backbone's statistics, BGR channel order, squashing instead of
resize-and-crop, ...), and names the first mistake that matches.

Banks refer to it as ``tlcourse.exercises.checkers_pretrained:preprocess_function``.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.transforms import functional as F  # what weights.transforms() itself calls

from ...errors import unknown_name
from ..feedback import Feedback
from .common import as_model, fail, names, plural, reference_params
from .registry import register_checker

#: mean absolute difference (in normalised units) below which an output counts as the reference;
#: it allows another interpolation or antialiasing choice, which moves pixels by a few levels.
TOLERANCE = 0.02


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[torch.Tensor, ...]:
    """Two real photos with different aspect ratios (landscape cat, landscape cup), uint8 CHW."""
    from skimage import data as skdata

    return tuple(torch.from_numpy(img).permute(2, 0, 1).contiguous() for img in (skdata.chelsea(), skdata.coffee()))


def _preprocessing(backbone: str):
    from ...models import OFFLINE_BACKBONES, get_spec

    if backbone not in OFFLINE_BACKBONES:
        raise unknown_name("backbone", backbone, OFFLINE_BACKBONES)
    return get_spec(backbone).preprocessing


def _normalise(x: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    return F.normalize(x, mean=list(mean), std=list(std))


def _mistakes(image: torch.Tensor, backbone: str, crop_size: int, resize_size: int) -> list[tuple[str, torch.Tensor]]:
    """(message, output) for the right recipe first, then for each typical mistake."""
    from ...models import OFFLINE_BACKBONES, get_spec

    pre = _preprocessing(backbone)
    resized = F.resize(image, [resize_size], antialias=True)
    cropped = F.center_crop(resized, [crop_size])
    unit = cropped.float() / 255
    right = _normalise(unit, pre.mean, pre.std)
    out = [("", right)]
    for other in OFFLINE_BACKBONES:
        theirs = get_spec(other).preprocessing
        if theirs.mean != pre.mean or theirs.std != pre.std:
            out.append((
                f"The values are normalised with {other}'s statistics (mean {_fmt(theirs.mean)}, std "
                f"{_fmt(theirs.std)}), but {backbone} was trained with mean {_fmt(pre.mean)}, std "
                f"{_fmt(pre.std)}. Take them from the backbone's own preprocessing.",
                _normalise(unit, theirs.mean, theirs.std),
            ))
    out += [
        ("The image is scaled to [0, 1] but not normalised: subtract the mean and divide by the std "
         "of each channel (F.normalize).", unit),
        ("The pixels were not divided by 255 before normalising: the values are about 255 times too "
         "large. Convert to float and divide by 255 first.", _normalise(cropped.float(), pre.mean, pre.std)),
        ("The image is neither scaled nor normalised: values 0-255. Divide by 255, then normalise "
         "with the mean and std.", cropped.float()),
        ("The colour channels are in BGR order (blue first); the network expects RGB. Do not flip the "
         "channel axis.", _normalise(unit.flip(0), pre.mean, pre.std)),
        ("Mean and std are swapped: compute (x - mean) / std.", _normalise(unit, pre.std, pre.mean)),
        ("The values are de-normalised (x * std + mean) instead of normalised ((x - mean) / std).",
         unit * torch.tensor(pre.std).view(3, 1, 1) + torch.tensor(pre.mean).view(3, 1, 1)),
        (f"The whole image was squashed to {crop_size}x{crop_size}, which distorts its proportions. "
         f"Resize the shorter side to {resize_size} (keeping the aspect ratio), then centre-crop "
         f"{crop_size}.", _normalise(F.resize(image, [crop_size, crop_size], antialias=True).float() / 255, pre.mean, pre.std)),
        (f"The shorter side was resized to {crop_size} before the crop, so the crop keeps the whole "
         f"short side. The recipe resizes to {resize_size} first and crops the central "
         f"{crop_size}x{crop_size}, a slightly closer view.",
         _normalise(F.center_crop(F.resize(image, [crop_size], antialias=True), [crop_size]).float() / 255, pre.mean, pre.std)),
    ]
    return out


@functools.lru_cache(maxsize=4)
def _references(backbone: str, crop_size: int, resize_size: int) -> tuple[list[tuple[str, torch.Tensor]], ...]:
    """The right output and every typical mistake, for each test photo (computed once)."""
    return tuple(_mistakes(photo, backbone, crop_size, resize_size) for photo in _photos())


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().mean())


@register_checker
def preprocess_function(
    preprocess: Callable[[torch.Tensor], Any], backbone: str = "mobilenet_v2", crop_size: int = 224, resize_size: int = 256
) -> Feedback:
    """``preprocess(image)`` turns a uint8 ``(3, H, W)`` RGB photo into the backbone's input.

    The reference is the backbone's ``weights.transforms()`` recipe: resize the shorter side to
    ``resize_size``, centre-crop ``crop_size``, scale to [0, 1], normalise with the backbone's
    mean and std. The answer is a ``(3, crop_size, crop_size)`` float tensor.
    """
    if not callable(preprocess):
        return Feedback(
            False,
            "Pass your function itself (ex.check_code(..., preprocess=preprocess)), not its result: "
            f"got an object of type {type(preprocess).__name__}.",
        )
    _preprocessing(backbone)  # an unknown backbone is the bank's mistake: raise now
    worst = 0.0
    for k, photo in enumerate(_photos()):
        shape = f"a {tuple(photo.shape)} photo"
        try:
            got = preprocess(photo.clone())
        except Exception as exc:  # the learner's code failing is feedback, not a crash
            return Feedback(False, f"preprocess({shape}) raised {type(exc).__name__}: {exc}")
        if got is None:
            return Feedback(False, f"preprocess({shape}) returned None: did you forget the return statement?")
        if not isinstance(got, torch.Tensor):
            return Feedback(False, f"preprocess({shape}) returned a {type(got).__name__}; return a torch.Tensor.")
        want = (3, crop_size, crop_size)
        if got.ndim == 4 and got.shape[0] == 1 and tuple(got.shape[1:]) == want:
            return Feedback(
                False,
                f"preprocess returns a batch of one {tuple(got.shape)}; return a single image {want} "
                "(like weights.transforms()) and add the batch dimension when you stack images.",
            )
        if tuple(got.shape) != want:
            resized = tuple(F.resize(photo, [resize_size], antialias=True).shape)
            if tuple(got.shape) == resized:
                return Feedback(False, f"The output has shape {tuple(got.shape)}: resized but not centre-cropped to {crop_size}x{crop_size}.")
            if tuple(got.shape) == tuple(photo.shape):
                return Feedback(False, f"The output has the photo's own shape {tuple(got.shape)}: resize and crop it to {want}.")
            if got.ndim == 3 and got.shape[-1] == 3:
                return Feedback(False, f"The output has shape {tuple(got.shape)}: channels last. PyTorch wants (C, H, W).")
            return Feedback(False, f"The output has shape {tuple(got.shape)}; expected {want}.")
        if got.dtype == torch.uint8:
            return Feedback(False, "The output is still uint8 (0-255): convert to float, divide by 255 and normalise.")
        if not got.is_floating_point():
            return Feedback(False, f"The output has dtype {got.dtype}; expected a float tensor.")
        got = got.detach().float().cpu()
        if not torch.isfinite(got).all():
            return Feedback(False, "The output contains NaN or infinite values.")
        candidates = _references(backbone, crop_size, resize_size)[k]
        distances = [_distance(got, out) for _, out in candidates]
        if distances[0] <= TOLERANCE:
            worst = max(worst, distances[0])
            continue
        best = min(range(len(candidates)), key=distances.__getitem__)
        if best != 0 and distances[best] <= TOLERANCE:
            return Feedback(False, candidates[best][0])
        return Feedback(
            False,
            f"On {shape} the output differs from {backbone}'s weights.transforms() by "
            f"{distances[0]:.3f} on average (normalised units); no single usual mistake explains it. "
            "Check each step: resize the shorter side (bilinear, antialiased), centre-crop, divide by "
            "255, normalise.",
        )
    return Feedback(
        True,
        f"Same as {backbone}'s weights.transforms() on photos of two shapes (mean difference "
        f"{worst:.4f}): resize {resize_size}, crop {crop_size}, scale to [0, 1], normalise.",
    )


def _attr_path(path: str) -> str:
    """``classifier.1`` -> ``classifier[1]``: how the learner writes it in Python."""
    return re.sub(r"\.(\d+)", r"[\1]", path)


@register_checker
def new_head(model: nn.Module, num_classes: int, pretrained: bool = True) -> Feedback:
    """The ImageNet classifier was replaced by an ``nn.Linear`` with ``num_classes`` outputs.

    Also checks that the rest is intact: the backbone has the same parameters (names and
    shapes) as the ImageNet model and, with ``pretrained=True``, the same ImageNet weights
    (a backbone built with ``pretrained=False`` would throw away what we transfer).
    """
    m = as_model(model)
    if isinstance(m, Feedback):
        return m
    from ...models import spec_for

    spec = spec_for(m)
    head_path = spec.head
    try:
        head = m.get_submodule(head_path)
    except AttributeError:
        parts = head_path.split(".")
        owner, where = m, "the model"
        for i in range(1, len(parts)):
            try:
                owner, where = m.get_submodule(".".join(parts[:i])), ".".join(parts[:i])
            except AttributeError:
                break
        return Feedback(
            False,
            f"There is no module at {head_path}, where the {spec.name} head lives: {where} is now "
            f"a {type(owner).__name__}. Replace only the final layer "
            f"(model.{_attr_path(head_path)} = nn.Linear(...)) so the layers before it stay.",
        )
    if not isinstance(head, nn.Linear):
        return Feedback(False, f"The head at {head_path} is a {type(head).__name__}; expected an nn.Linear.")
    reference = reference_params(spec.name, pretrained)
    problems: list[str] = []
    ref_head = reference[f"{head_path}.weight"]
    if head.out_features != num_classes:
        note = " (that is still the ImageNet classifier)" if head.out_features == ref_head.shape[0] else ""
        problems.append(
            f"The head has {head.out_features} outputs{note}; expected {num_classes}, one per class."
        )
    if head.in_features != ref_head.shape[1]:
        problems.append(
            f"The head reads {head.in_features} features, but the backbone gives {ref_head.shape[1]}."
        )
    mine = {n: p for n, p in m.named_parameters() if not n.startswith(head_path + ".")}
    ref_body = {n: p for n, p in reference.items() if not n.startswith(head_path + ".")}
    missing = [n for n in ref_body if n not in mine]
    extra = [n for n in mine if n not in ref_body]
    reshaped = [n for n in ref_body if n in mine and mine[n].shape != ref_body[n].shape]
    if missing:
        problems.append(f"The backbone lost {plural(len(missing), 'tensor')}: {names(missing)}.")
    if extra:
        problems.append(f"The model has {plural(len(extra), 'unexpected tensor')}: {names(extra)}.")
    if reshaped:
        problems.append(f"{plural(len(reshaped), 'backbone tensor')} changed shape: {names(reshaped)}.")
    if pretrained and not (missing or reshaped):
        changed = [
            n for n in ref_body if not torch.equal(mine[n].detach().cpu(), ref_body[n])
        ]
        if changed:
            problems.append(
                f"{plural(len(changed), 'backbone tensor')} differ from the ImageNet weights "
                f"({names(changed, 3)}): was the model built with pretrained=False, or trained already?"
            )
    if problems:
        return fail(problems)
    return Feedback(
        True,
        f"The head is a new Linear({head.in_features} -> {num_classes}); the {spec.name} backbone "
        "is intact.",
    )


__all__ = ["new_head", "preprocess_function"]
