"""Checkers for lesson 04 (feature extraction): a pooled linear head, putting it back in the model,
and an augmentation pipeline written out as a ``transforms.Compose``.

Like every checker, each returns a :class:`Feedback` whose message names the
learner's mistake (flattening without pooling, max instead of average pooling, a softmax at the
end, a fresh head instead of the trained one), and raises :class:`CourseError` only when the
*bank* passes impossible settings.

The checks are behavioural: they run the learner's module on a probe input and compare the result
with what the right construction computes, so any correct way of writing it passes (``nn.Sequential``
with ``AdaptiveAvgPool2d``, a custom ``forward`` with ``x.mean((2, 3))``, ...).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..._checks import is_int
from ...errors import CourseError, InvalidParameterError
from ...data.transforms import is_random_op
from ..feedback import Feedback
from .common import as_model, fail, reference_params
from .registry import register_checker

#: Probe feature maps: two sizes, so a pooling that only fits one grid is caught.
_PROBE_SIZES = ((4, 4), (7, 5))


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _probe(in_features: int, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Non-negative, seeded feature maps (like the ReLU outputs a real backbone gives)."""
    generator = torch.Generator().manual_seed(1234 + size[0] * 31 + size[1])
    return torch.rand((2, in_features, *size), generator=generator).to(device)


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5)


@register_checker
def pooled_linear_head(head: Any, in_features: int, num_classes: int) -> Feedback:
    """``head`` turns ``(N, in_features, H, W)`` feature maps into ``(N, num_classes)`` scores by
    global average pooling followed by one trainable linear layer, for any ``H, W``.

    The scores must be raw (logits): ``nn.CrossEntropyLoss`` applies the softmax itself.
    """
    if not (is_int(in_features) and in_features > 0 and is_int(num_classes) and num_classes > 1):
        raise InvalidParameterError(
            f"pooled_linear_head needs in_features > 0 and num_classes > 1 from the bank, got "
            f"in_features={in_features!r}, num_classes={num_classes!r}."
        )
    if not isinstance(head, nn.Module):
        return Feedback(False, f"Expected an nn.Module as the head, got a {type(head).__name__}.")
    linears = _linears(head)
    if not linears:
        return Feedback(False, "The head has no nn.Linear layer: after pooling, a linear layer must map the "
                               f"{in_features} pooled features to {num_classes} class scores.")
    if len(linears) > 1:
        return Feedback(False, f"The head has {len(linears)} linear layers; feature extraction trains a single "
                               "nn.Linear on the pooled features (more layers need more data).")
    linear = linears[0]
    problems = []
    if linear.in_features != in_features:
        if linear.in_features % in_features == 0 and linear.in_features > in_features:
            cells = linear.in_features // in_features
            problems.append(
                f"The linear layer reads {linear.in_features} features = {in_features} channels x {cells} "
                "positions: the feature map was flattened without pooling. Add nn.AdaptiveAvgPool2d(1) "
                f"before nn.Flatten(), so the layer reads {in_features} features, one per channel."
            )
        else:
            problems.append(
                f"The linear layer reads {linear.in_features} features, but global average pooling leaves "
                f"{in_features} (one per channel of the feature map)."
            )
    if linear.out_features != num_classes:
        problems.append(f"The linear layer has {linear.out_features} outputs; expected {num_classes}, one per class.")
    if not all(p.requires_grad for p in linear.parameters()):
        problems.append("The linear layer is frozen (requires_grad=False): it is the one part that must learn.")
    if problems:
        return fail(problems)

    from ...models.modes import evaluating

    device = _device_of(head)
    # eval mode: dropout, if the learner added some, must not make the comparison random
    with evaluating(head):
        with torch.no_grad():
            for size in _PROBE_SIZES:
                x = _probe(in_features, size, device)
                try:
                    out = head(x)
                except Exception as exc:  # a learner's broken module: feedback, not a traceback
                    return Feedback(
                        False,
                        f"The head failed on feature maps of shape {tuple(x.shape)} "
                        f"({type(exc).__name__}: {exc}). It must accept any grid size: use "
                        "nn.AdaptiveAvgPool2d(1), then nn.Flatten().",
                    )
                if not isinstance(out, torch.Tensor):
                    return Feedback(False, f"The head returned a {type(out).__name__}; expected a tensor of scores.")
                expected = linear(x.mean(dim=(2, 3)))
                if _close(out, expected):
                    continue
                if out.shape != expected.shape:
                    return Feedback(
                        False,
                        f"On feature maps of shape {tuple(x.shape)} the head returned shape {tuple(out.shape)}; "
                        f"expected {tuple(expected.shape)} (one score per class per image). "
                        "Pool over all positions with nn.AdaptiveAvgPool2d(1) and flatten before the linear layer.",
                    )
                if _close(out, linear(x.amax(dim=(2, 3)))):
                    return Feedback(False, "The head uses max pooling; feature extraction here uses global *average* "
                                           "pooling (nn.AdaptiveAvgPool2d(1)), what the backbone's own head does.")
                if _close(out, expected.softmax(dim=1)) or _close(out, expected.log_softmax(dim=1)):
                    return Feedback(False, "The head ends with a (log-)softmax. Return raw scores (logits): "
                                           "nn.CrossEntropyLoss applies log-softmax itself.")
                if size != _PROBE_SIZES[0]:
                    return Feedback(False, f"The head is right for one grid size but not for {size[0]}x{size[1]} "
                                           "feature maps: a fixed-size pooling (e.g. nn.AvgPool2d(4)) does not "
                                           "average the whole map. Use nn.AdaptiveAvgPool2d(1).")
                return Feedback(False, "The scores are not linear(average of each channel over all positions): "
                                       "use global average pooling, flatten, then the linear layer, with nothing "
                                       "else in between or after.")
    n = linear.in_features * linear.out_features + (linear.out_features if linear.bias is not None else 0)
    return Feedback(True, f"Global average pooling, then Linear({in_features} -> {num_classes}): {n:,} trainable weights.")


@register_checker
def head_in_model(model: Any, head: Any) -> Feedback:
    """The trained ``head`` sits at the backbone's head position of ``model``, and the whole model
    (in eval mode) predicts ``head(pooled features)`` for an image.
    """
    from ...models import pooled_features, spec_for
    from ...models.modes import evaluating

    checked = as_model(model)
    if isinstance(checked, Feedback):
        return checked
    if not isinstance(head, nn.Linear):
        return Feedback(False, f"Expected the trained head, an nn.Linear, got a {type(head).__name__}.")
    try:
        spec = spec_for(model)
    except CourseError:
        return Feedback(False, f"The model is a {type(model).__name__}, not a course backbone: pass the model from "
                               "tlcourse.models.create_model (or load_backbone), not a wrapper around it.")
    try:
        placed = model.get_submodule(spec.head)
    except AttributeError:
        return Feedback(False, f"There is no module at {spec.head}, where the {spec.name} head lives: a larger part "
                               "of the model was replaced. Use tlcourse.models.replace_head(model, head), which "
                               "replaces exactly the final linear layer.")
    if placed is not head:
        if not isinstance(placed, nn.Linear):
            return Feedback(False, f"The module at {spec.head} is a {type(placed).__name__}, not your head.")
        if placed.out_features != head.out_features:
            imagenet = " (still the ImageNet classifier)" if placed.out_features == 1000 else ""
            return Feedback(False, f"The model's head has {placed.out_features} outputs{imagenet}; yours has "
                                   f"{head.out_features}. Put your trained head in: models.replace_head(model, head).")
        same = placed.weight.shape == head.weight.shape and torch.equal(
            placed.weight.detach().cpu(), head.weight.detach().cpu()
        )
        if not same:
            return Feedback(False, "The model's head is a different linear layer from your trained head (a new "
                                   "nn.Linear starts from random weights). Pass the trained head object itself to "
                                   "replace_head.")
    reference = reference_params(spec.name, True)
    body = {n: p for n, p in model.named_parameters() if not n.startswith(spec.head + ".")}
    changed = [n for n, ref in reference.items() if not n.startswith(spec.head + ".")
               and (n not in body or body[n].shape != ref.shape or not torch.equal(body[n].detach().cpu(), ref))]
    if changed:
        return Feedback(False, f"{len(changed)} tensors of the body differ from the pretrained {spec.name} (e.g. "
                               f"{changed[0]}): the head was trained on the pretrained body's features, so it only "
                               "fits that body. Start again from models.create_model and replace only the head.")
    device = _device_of(model)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((2, 3, 64, 64), generator=generator).to(device)
    try:
        with evaluating(model), torch.no_grad():
            whole = model(x)
            parts = head.to(device)(pooled_features(model, x))
    except Exception as exc:
        return Feedback(False, f"The model failed on a batch of images ({type(exc).__name__}: {exc}).")
    if not _close(whole, parts):
        return Feedback(False, "The model's scores differ from head(pooled features): something besides the head "
                               "was changed (a layer added or removed). Start from the pretrained model and "
                               "replace only the head.")
    return Feedback(True, f"The trained head is in place at {spec.head}; the whole model predicts what the head "
                          "predicts on the cached features.")


_TRIES = 12


def _normalize_stats(op: Any) -> tuple[list[float], list[float]] | None:
    """(mean, std) of a Normalize step: torchvision's v1/v2 ``Normalize`` or the course's own."""
    if type(op).__name__ != "Normalize":
        return None
    source = getattr(op, "preprocessing", op)
    mean, std = getattr(source, "mean", None), getattr(source, "std", None)
    if mean is None or std is None:
        return None
    return [float(v) for v in mean], [float(v) for v in std]


def _leaf_photo(image_size: int) -> torch.Tensor:
    """A real photo as the course's datasets hold it: uint8 CHW, resized and centre-cropped."""
    from skimage import data as skdata
    from torchvision.transforms.v2.functional import center_crop, resize

    photo = torch.from_numpy(skdata.chelsea().copy()).permute(2, 0, 1).contiguous()
    return center_crop(resize(photo, [image_size], antialias=True), [image_size])


def _outputs(transform: Any, photo: torch.Tensor) -> list[torch.Tensor] | Feedback:
    outs = []
    for i in range(_TRIES):
        torch.manual_seed(i)
        try:
            out = transform(photo.clone())
        except Exception as error:  # the learner's pipeline failed on a valid input: say how
            text = str(error)
            advice = (
                "A step needs floats: put v2.ToDtype(torch.float32, scale=True) before it."
                if "float" in text.lower()
                else "Use torchvision.transforms.v2 operations (v1's ToTensor expects a PIL image)."
                if "PIL" in text
                else "Try it on one image: transform(train_small.images[0])."
            )
            return Feedback(
                False,
                f"Your Compose raised {type(error).__name__} ({text}) on a uint8 (3, H, W) image tensor, "
                f"which is what the course's datasets hold. {advice}",
            )
        if not isinstance(out, torch.Tensor):
            return Feedback(False, f"Your Compose returned a {type(out).__name__}; the model needs a tensor.")
        outs.append(out)
    return outs


def _structure_problems(ops: list, mean: list[float], std: list[float], image_size: int) -> list[str]:
    problems: list[str] = []
    names_ = [type(op).__name__ for op in ops]
    crops = [op for op in ops if type(op).__name__ == "RandomResizedCrop"]
    if not crops:
        problems.append("There is no RandomResizedCrop: the exercise asks for a random crop of part of the photo.")
    elif any(list(op.size) not in ([image_size, image_size], [image_size]) for op in crops):
        problems.append(f"The RandomResizedCrop makes {list(crops[0].size)}; it must give back {image_size} px.")
    if "RandomHorizontalFlip" not in names_:
        problems.append("There is no RandomHorizontalFlip: a leaf seen in a mirror is still the same disease.")
    stats = [(i, _normalize_stats(op)) for i, op in enumerate(ops)]
    norms = [(i, st) for i, st in stats if st is not None]
    if not norms:
        problems.append(
            "There is no Normalize step: the pretrained network expects its own mean and std "
            f"(mean {[round(v, 3) for v in mean]}, std {[round(v, 3) for v in std]})."
        )
        return problems
    at, (got_mean, got_std) = norms[-1]
    if not (torch.allclose(torch.tensor(got_mean), torch.tensor(mean), atol=2e-3)
            and torch.allclose(torch.tensor(got_std), torch.tensor(std), atol=2e-3)):
        problems.append(
            f"Normalize uses mean {[round(v, 3) for v in got_mean]}, std {[round(v, 3) for v in got_std]}; this "
            f"backbone was trained with mean {[round(v, 3) for v in mean]}, std {[round(v, 3) for v in std]} "
            "(preprocessing.mean, preprocessing.std)."
        )
    late = [type(op).__name__ for op in ops[at + 1:] if is_random_op(op)]
    if late:
        problems.append(
            f"{', '.join(late)} come{'s' if len(late) == 1 else ''} after Normalize: augment the photo first, "
            "normalise last, so the network always sees its own statistics."
        )
    return problems


@register_checker
def augmentation_pipeline(transform: Any, backbone: str, image_size: int) -> Feedback:
    """A training Compose for uint8 image tensors: random resized crop and flip first, then float
    scaling and the backbone's Normalize last; it must really be random and keep ``image_size``.

    The checks run the pipeline on a real photo (``_TRIES`` seeded calls) and read its steps.
    """
    from ...models import get_spec

    if not is_int(image_size) or image_size < 16:
        raise InvalidParameterError(f"augmentation_pipeline: image_size must be an integer >= 16, got {image_size!r}.")
    pre = get_spec(backbone).preprocessing
    ops = getattr(transform, "transforms", None)
    if not isinstance(ops, (list, tuple)) or not callable(transform):
        return Feedback(
            False,
            f"Expected a transforms.Compose([...]) (torchvision.transforms.v2), got a {type(transform).__name__}.",
        )
    outs = _outputs(transform, _leaf_photo(image_size))
    if isinstance(outs, Feedback):
        return outs
    first = outs[0]
    problems: list[str] = []
    if not first.is_floating_point():
        problems.append(
            f"The output is {first.dtype}: the network needs floats in [0, 1] before Normalize. "
            "Add v2.ToDtype(torch.float32, scale=True) before Normalize."
        )
    elif first.abs().max() > 10:
        problems.append(
            f"The output reaches {float(first.abs().max()):.0f}: the pixels were not scaled from 0..255 to "
            "0..1 before Normalize (v2.ToDtype(torch.float32, scale=True), with scale=True)."
        )
    if tuple(first.shape) != (3, image_size, image_size):
        problems.append(f"The output has shape {tuple(first.shape)}; expected (3, {image_size}, {image_size}).")
    if all(torch.equal(first, o) for o in outs[1:]):
        problems.append(
            f"The same photo came out identical in {_TRIES} calls: nothing random happens, so every epoch "
            "would see the same pixels (that is no augmentation)."
        )
    problems += _structure_problems(list(ops), list(pre.mean), list(pre.std), image_size)
    if problems:
        return fail(problems)
    steps = " -> ".join(type(op).__name__ for op in ops)
    return Feedback(True, f"{steps}: random crops and flips of the uint8 photo, normalised last with {backbone}'s statistics.")


__all__ = ["augmentation_pipeline", "head_in_model", "pooled_linear_head"]
