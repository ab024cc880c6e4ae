"""Features computed once: the CPU fast path for transfer learning.

With a frozen backbone, the backbone's output for an image never changes, so running the
backbone every epoch repeats the same work. :func:`extract_features` runs it once per image,
keeps the result in memory and on disk (keyed by the backbone's weights, the images and the
transform), and every later epoch - of any experiment on the same data - trains only the head
on those features. :func:`extract_features` with ``stage=`` does the same at a stage boundary,
so partial fine-tuning trains just the unfrozen top. :func:`probe_stages` fits a linear
classifier on each stage's pooled features: how "ready" each depth's features are for a task.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from . import atomic, precision
from .device import pick_device
from .errors import CourseError, unknown_name
from .models import spec_for, stage_sequence
from .models.folding import fold_batchnorm
from .models.modes import evaluating
from .paths import subcache
from .safeload import load_cache
from .train import History, fit, iterate_batches
from .train.loop import forward_in_pieces

_MEMORY: dict[str, "FeatureSet"] = {}


@dataclass
class FeatureSet(Dataset):
    """Precomputed features (or activations) with their labels; a torch Dataset."""

    features: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    key: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.features[i], int(self.labels[i])

    @property
    def dim(self) -> int:
        return int(self.features[0].numel())

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        return self.features.reshape(len(self), -1).float().numpy(), self.labels.numpy()


def _module_digest(modules: list[nn.Module]) -> str:
    digest = hashlib.sha1()
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_cacheable(data: Dataset) -> None:
    transform = getattr(data, "transform", None)
    if transform is None:
        raise CourseError(
            "The dataset has no transform, so it returns raw uint8 images. Give it the backbone's "
            "preprocessing: data.with_transform(tlcourse.data.eval_transform(preprocessing))."
        )
    from .data.transforms import is_augmenting

    if is_augmenting(transform):
        raise CourseError(
            "Features of augmented images would cache one random augmentation and reuse it every "
            "epoch. Extract features with eval_transform(preprocessing), or train end-to-end "
            "with fit() to benefit from augmentation."
        )


def extract_features(
    model: nn.Module,
    data: Dataset,
    *,
    stage: str | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = "auto",
    cache: bool = True,
    progress: bool = True,
    amp: bool | str = True,
) -> FeatureSet:
    """Run the frozen backbone once over ``data``.

    ``stage=None``: the pooled penultimate features that the head reads (N, D).
    ``stage="stage4"``: the raw activations after that stage (N, C, H, W), to train the rest
    of the network on with :func:`tlcourse.models.split_at`'s ``top``.
    Results are cached in memory and under ``TLCOURSE_CACHE/features``.

    The passes run a BatchNorm-folded copy of the frozen stages
    (:func:`tlcourse.models.folding.fold_batchnorm`: the same function with one pass over
    the activations fewer per BatchNorm; see ``bench/README.md``), in channels-last memory
    on the CPU, under ``torch.inference_mode``. ``model`` itself only moves to ``device``,
    outside inference mode: inside it, its parameters would become inference tensors and the
    same model could never be unfrozen and fine-tuned. ``amp``: the number format of the passes
    (:mod:`tlcourse.precision`; what ``"bfloat16"`` gains on a CPU with bfloat16 units is measured
    by ``bench/bench_bfloat16.py``); features computed in another format are cached apart.
    """
    _check_cacheable(data)
    seq = stage_sequence(model)
    names = list(seq)
    if stage is not None and stage not in names[:-1]:
        raise unknown_name("stage", stage, names[:-1])
    upto = names[: names.index(stage) + 1] if stage else names[:-1]
    modules = [seq[n] for n in upto]
    device = pick_device(device)
    key = None
    if cache:
        ds_key = data.fingerprint() if hasattr(data, "fingerprint") else None
        if ds_key is None:
            raise CourseError("Caching needs a dataset with a fingerprint() (an ImageTensorDataset); pass cache=False.")
        raw = f"{spec_for(model).name}|{_module_digest(modules)}|{ds_key}|{data.transform!r}|{stage}{_format_key(device, amp)}"
        key = hashlib.sha1(raw.encode()).hexdigest()[:20]
        cached = _recall(key)
        if cached is not None:
            return cached
    result = _run_folded(model, modules, iterate_batches(data, batch_size), list(getattr(data, "classes", [])),
                         pool=stage is None, device=device, desc=f"features ({stage or 'penultimate'})", progress=progress,
                         amp=amp)
    return _remember(result, key)


def _format_key(device: torch.device, amp: bool | str) -> str:
    """The part of a cache key that tells a 16-bit pass from a float32 one (empty for float32)."""
    dtype = precision.autocast_dtype(device, amp)
    return "" if dtype is None else f"|{dtype}"


def features_above(
    model: nn.Module,
    acts: FeatureSet,
    *,
    after: str,
    batch_size: int = 128,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    amp: bool | str = True,
) -> FeatureSet:
    """The pooled penultimate features (N, D) of photos whose activations after stage ``after`` are cached.

    ``acts`` comes from ``extract_features(model, data, stage=after)``; only the stages above
    ``after`` run, once per photo, as :func:`extract_features` runs them (BatchNorm folded,
    channels-last on the CPU, inference mode). ``extract_features(model, data)`` gives the same
    features (up to float rounding) with the stages below ``after`` run again. Cached like
    :func:`extract_features` when ``acts`` was.
    """
    seq = stage_sequence(model)
    names = list(seq)
    if after not in names[:-1]:
        raise unknown_name("stage", after, names[:-1])
    if not isinstance(acts, FeatureSet) or acts.features.ndim != 4:
        raise CourseError(f"features_above() reads cached activations after {after!r}: the (N, C, H, W) FeatureSet "
                          f"that extract_features(model, data, stage={after!r}) returns.")
    modules = [seq[n] for n in names[names.index(after) + 1:-1]]
    device = pick_device(device)
    key = None
    if acts.key:
        raw = f"{spec_for(model).name}|{_module_digest(modules)}|{acts.key}|above {after}{_format_key(device, amp)}"
        key = hashlib.sha1(raw.encode()).hexdigest()[:20]
        cached = _recall(key)
        if cached is not None:
            return cached
    batches = zip(acts.features.split(batch_size), acts.labels.split(batch_size))
    result = _run_folded(model, modules, batches, list(acts.classes), pool=True, device=device,
                         desc=f"features (above {after})", progress=progress, total=-(-len(acts) // batch_size), amp=amp)
    return _remember(result, key)


def _recall(key: str) -> FeatureSet | None:
    """A cached result, from memory or from ``TLCOURSE_CACHE/features``; None if there is none."""
    if key in _MEMORY:
        return _MEMORY[key]
    saved = load_cache(subcache("features") / f"{key}.pt", ("features", "labels", "classes"))
    if saved is None:
        return None
    _MEMORY[key] = FeatureSet(saved["features"], saved["labels"], saved["classes"], key)
    return _MEMORY[key]


def _remember(result: FeatureSet, key: str | None) -> FeatureSet:
    if key is not None:
        result.key = key
        atomic.torch_save({"features": result.features, "labels": result.labels, "classes": result.classes},
                          subcache("features") / f"{key}.pt")
        _MEMORY[key] = result
    return result


#: BatchNorm-folded copies of recently run stages: (the tensors folded, their state then, the copy).
_FOLDED: list[tuple[list[torch.Tensor], tuple, nn.Sequential]] = []
_FOLDED_KEPT = 4


def _weights_state(tensors: list[torch.Tensor]) -> tuple:
    """Where each tensor lives, its shape, and how often it was changed in place."""
    return tuple((t.device, t.data_ptr(), tuple(t.shape), t._version) for t in tensors)


def _folded(modules: list[nn.Module]) -> nn.Sequential:
    """A BatchNorm-folded copy of ``modules`` in sequence (the same function, faster), made once
    and reused while their weights stay as they were: folding copies and traces every block,
    which costs more than running a few hundred photos through the stages it folds.

    The stages are recognised by their weights and buffers, not by the module objects (which
    :func:`tlcourse.models.stage_sequence` builds afresh): the same tensors, unchanged since
    (an optimizer step, ``load_state_dict`` or any in-place change counts as a change). The
    entry holds those tensors, so no other tensor can take their memory while it is kept.
    """
    tensors = [t for m in modules for t in m.state_dict(keep_vars=True).values()]
    state = _weights_state(tensors)
    for kept, kept_state, stages in _FOLDED:
        if kept_state == state and all(a is b for a, b in zip(kept, tensors)):
            return stages
    stages = nn.Sequential(*(fold_batchnorm(m) for m in modules))
    _FOLDED.insert(0, (tensors, state, stages))
    del _FOLDED[_FOLDED_KEPT:]
    return stages


def _run_folded(model: nn.Module, modules: list[nn.Module], batches, classes: list[str], *, pool: bool,
                device: torch.device, desc: str, progress: bool, total: int | None = None,
                amp: bool | str = True) -> FeatureSet:
    """Run a BatchNorm-folded copy of ``modules`` (frozen stages of ``model``) over ``batches`` of (x, y)
    on ``device`` (as :func:`tlcourse.device.pick_device` resolved it)."""
    autocast = precision.autocast(device, amp)
    with evaluating(model):
        for m in modules:
            m.to(device)
        stages = _folded(modules)
    channels_last = device.type == "cpu"
    if channels_last:
        stages.to(memory_format=torch.channels_last)
    feats, labels = [], []
    with torch.inference_mode():
        for x, y in tqdm(batches, desc=desc, disable=not progress, leave=False, total=total):
            x = x.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                out = forward_in_pieces(stages, x, device)
            if pool:
                out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)
            feats.append(out.float().contiguous().cpu())
            labels.append(y)
    return FeatureSet(torch.cat(feats), torch.cat(labels), classes)


@dataclass
class MirrorPairs(Dataset):
    """Cached activations of each photo and of its mirror image; each item is one of the two,
    drawn at random every time it is read.

    That is random horizontal flipping, the augmentation that suits leaves, on cached
    activations: the backbone ran twice per photo once, and every epoch after that costs only
    the layers that train. (A network is not exactly mirror-symmetric, so the mirror's
    activations are computed, not obtained by flipping the photo's.) The draw uses torch's
    global generator, which :func:`tlcourse.train.fit` seeds: the same seed, the same views.

    With ``upside_down`` and ``upside_down_mirror`` as well (``extract_mirror_pairs(...,
    upside_down=True)``), each item is one of the four views, drawn uniformly: random
    horizontal *and* vertical flipping.
    """

    photo: FeatureSet
    mirror: FeatureSet
    upside_down: FeatureSet | None = None
    upside_down_mirror: FeatureSet | None = None

    def __post_init__(self) -> None:
        if (self.upside_down is None) != (self.upside_down_mirror is None):
            raise CourseError("MirrorPairs needs both upside-down views (the photo's and its mirror image's) or neither.")
        if any(len(v) != len(self.photo) or not torch.equal(v.labels, self.photo.labels) for v in self.views):
            raise CourseError("MirrorPairs needs the activations of every view of the same photos in the same order; "
                              "build them with extract_mirror_pairs(model, data, ...).")

    @property
    def views(self) -> list[FeatureSet]:
        """The cached views: photo and mirror image, then the two upside-down ones if there are."""
        upside = [self.upside_down, self.upside_down_mirror] if self.upside_down is not None else []
        return [self.photo, self.mirror, *upside]

    def __len__(self) -> int:
        return len(self.photo)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.upside_down is None:  # the two-view draw of before, so earlier seeds draw the same views
            view = self.mirror if torch.rand(()) < 0.5 else self.photo
        else:
            view = self.views[int(torch.randint(0, 4, ()))]
        return view.features[i], int(view.labels[i])

    @property
    def classes(self) -> list[str]:
        return self.photo.classes


def extract_mirror_pairs(
    model: nn.Module,
    data: Dataset,
    *,
    stage: str | None = None,
    upside_down: bool = False,
    batch_size: int = 64,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    amp: bool | str = True,
) -> MirrorPairs:
    """:func:`extract_features` of ``data`` and of its mirror images (all cached), as :class:`MirrorPairs`.

    ``upside_down=True`` adds the photos flipped top-bottom, and those mirrored as well: four
    views per photo, twice the backbone passes.
    """
    from .data.transforms import Mirror

    _check_cacheable(data)
    kwargs = {"stage": stage, "batch_size": batch_size, "device": device, "progress": progress, "amp": amp}
    photo = extract_features(model, data, **kwargs)
    mirror = extract_features(model, data.with_transform(Mirror(data.transform)), **kwargs)
    if not upside_down:
        return MirrorPairs(photo, mirror)
    flipped = [extract_features(model, data.with_transform(Mirror(data.transform, upside_down=True, left_right=lr)),
                                **kwargs) for lr in (False, True)]
    return MirrorPairs(photo, mirror, *flipped)


def clear_memory_cache() -> None:
    _MEMORY.clear()
    _FOLDED.clear()


def train_linear_head(
    train: FeatureSet,
    val: FeatureSet | None = None,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    progress: bool = False,
    patience: int | None = None,
) -> tuple[nn.Linear, History]:
    """A new linear head trained on cached features with the course's :func:`fit` loop.

    The head is a plain ``nn.Linear(D, C)``: put it into the model with
    :func:`tlcourse.models.replace_head` and the model predicts exactly as trained here.
    """
    torch.manual_seed(seed)
    head = nn.Linear(train.dim, len(train.classes) or int(train.labels.max()) + 1)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    history = fit(
        head, train, val, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
        device=device, seed=seed, progress=progress, patience=patience, label="linear head", freeze_bn=False,
    )
    return head, history


def logistic_regression(train: FeatureSet, test: FeatureSet, *, C: float = 1.0, max_iter: int = 1000) -> dict[str, Any]:
    """scikit-learn's logistic regression on standardised features: the classic linear probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, ytr = train.numpy()
    xte, yte = test.numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    clf.fit(xtr, ytr)
    return {"model": clf, "train_acc": float(clf.score(xtr, ytr)), "acc": float(clf.score(xte, yte))}


def _linear_from_standardised(scaler: Any, coef: np.ndarray, intercept: np.ndarray) -> nn.Linear:
    """``nn.Linear`` computing ``coef . (x - mean) / std + intercept`` on raw features.

    The standardisation is folded into the weights (``w / std``, ``b - w . mean / std``). With
    two classes scikit-learn fits one logit ``z``; the layer gives ``(-z/2, z/2)``, whose
    softmax is the same probability.
    """
    weight = torch.as_tensor(coef / scaler.scale_, dtype=torch.float32)
    bias = torch.as_tensor(intercept - (coef * scaler.mean_ / scaler.scale_).sum(1), dtype=torch.float32)
    if weight.shape[0] == 1:
        weight, bias = torch.cat([-weight / 2, weight / 2]), torch.cat([-bias / 2, bias / 2])
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head


def logistic_head(train: FeatureSet, *, C: float = 1.0, max_iter: int = 2000) -> nn.Linear:
    """A new linear head fitted as scikit-learn's logistic regression, returned as ``nn.Linear``.

    On a few hundred cached feature vectors, L-BFGS on standardised features reaches the
    optimum of the regularised loss in a second or two, where an SGD-trained head still
    underfits after dozens of epochs; and ``C`` (the inverse regularisation strength) is the
    one knob to choose on validation. The standardisation is folded into the weights, so the
    head reads the raw features the backbone gives and :func:`tlcourse.models.replace_head`
    puts it into the model as it is.
    """
    clf = logistic_regression(train, train, C=C, max_iter=max_iter)["model"]
    return _linear_from_standardised(clf[0], clf[-1].coef_, clf[-1].intercept_)


def lda_head(train: FeatureSet, *, shrinkage: float = 0.5) -> nn.Linear:
    """A new linear head fitted as linear discriminant analysis with shrinkage, as ``nn.Linear``.

    LDA models each class as a Gaussian around its mean with one covariance shared by all
    classes, and its decision rule is linear. With a few dozen photos per class and a few
    hundred features, that shared covariance is estimated from all the photos at once, and
    ``shrinkage`` (0: the sample covariance, 1: a diagonal one) pulls it towards a stable
    estimate: the one knob, chosen on validation. On standardised features (folded into the
    weights); its softmax is scikit-learn's ``predict_proba``.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not 0.0 <= float(shrinkage) <= 1.0:
        raise CourseError(f"shrinkage must lie between 0 and 1; got {shrinkage}.")
    x, y = train.numpy()
    clf = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage=float(shrinkage))).fit(x, y)
    return _linear_from_standardised(clf[0], clf[-1].coef_, clf[-1].intercept_)


def _labels_of(data: Dataset) -> torch.Tensor:
    labels = getattr(data, "labels", None)
    if labels is None:
        labels = getattr(data, "targets", None)  # torchvision's ImageFolder
    if labels is None:
        labels = [int(y) for _, y in data]
    return torch.as_tensor(labels)


def _pooled_by_stage(stages: dict[str, nn.Module], data: Dataset, batch_size: int, device: torch.device, progress: bool) -> dict[str, torch.Tensor]:
    """Each stage's globally pooled output for every image, running ``stages`` in order."""
    out: dict[str, list[torch.Tensor]] = {n: [] for n in stages}
    with torch.inference_mode():
        for x, _ in tqdm(iterate_batches(data, batch_size), desc="probing stages", disable=not progress, leave=False):
            h = x.to(device)
            for n, stage in stages.items():
                h = stage(h)
                out[n].append(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1).float().cpu())
    return {n: torch.cat(v) for n, v in out.items()}


def stage_features(
    model: nn.Module,
    *datasets: Dataset,
    batch_size: int = 64,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> list[dict[str, torch.Tensor]]:
    """Each stage's globally pooled output for every image of each dataset (one pass per dataset).

    Returns one ``{stage: (N, channels) tensor}`` per dataset, stages in forward order (the
    head excluded). BatchNorm is folded once into the stages for the passes; ``model``'s
    own modes and weights are left as they were.
    """
    for d in datasets:
        _check_cacheable(d)
    device = pick_device(device)
    with evaluating(model):
        model.to(device)  # outside inference_mode, so the parameters stay trainable tensors
        seq = stage_sequence(model)
        stages = {n: fold_batchnorm(seq[n]) for n in list(seq)[:-1]}  # folded once, for every dataset
    return [_pooled_by_stage(stages, d, batch_size, device, progress) for d in datasets]


def probe_stages(
    model: nn.Module,
    train: Dataset,
    test: Dataset,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = "auto",
    C: float = 1.0,
    progress: bool = True,
):
    """Linear-probe accuracy of each stage's globally pooled features (one pass per split).

    Early stages give generic features (edges, colours, textures): a linear classifier on them
    does poorly on a 15-way leaf task. Later stages combine them into parts and objects, and
    probe accuracy rises - until the very top, which is tuned to ImageNet's own classes.
    Returns a DataFrame with columns stage, dim, train_acc, acc.
    """
    tr, te = stage_features(model, train, test, batch_size=batch_size, device=device, progress=progress)
    classes = list(getattr(train, "classes", []))
    return probe_features(tr, _labels_of(train), te, _labels_of(test), C=C, classes=classes)


def probe_features(
    train: dict[str, torch.Tensor],
    train_labels: torch.Tensor,
    test: dict[str, torch.Tensor],
    test_labels: torch.Tensor,
    *,
    C: float = 1.0,
    classes: list[str] | None = None,
):
    """:func:`probe_stages` on features already computed (``stage_features``' dicts, one per split)."""
    import pandas as pd

    rows = []
    for name in train:
        r = logistic_regression(FeatureSet(train[name], torch.as_tensor(train_labels), classes or []),
                                FeatureSet(test[name], torch.as_tensor(test_labels), classes or []), C=C)
        rows.append({"stage": name, "dim": train[name].shape[1], "train_acc": r["train_acc"], "acc": r["acc"]})
    return pd.DataFrame(rows)
