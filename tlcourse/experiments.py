"""One transfer-learning experiment, the same way every time: strategy x dataset x size x seed.

The decision matrix of transfer learning (how much data? how similar to ImageNet?) is only
convincing when measured, and only measurable when every cell is run the same way: the same
backbone, image size, epochs, batch size, learning rate and test images, so that the *strategy*
is the one thing that changes. :func:`run_strategy` is that one way; :func:`run_grid` repeats
it over datasets, sizes, strategies and seeds and returns one table row per run, which
:func:`summarise` and :func:`decision_table` condense and :func:`tlcourse.plots.plot_strategies`
draws. Lessons 06 (the decision matrix) and 08 (X-rays and solar cells) both
use it, so their numbers are comparable.

The five strategies, from least to most trained:

- ``linear_probe``: the backbone is frozen; its pooled features are computed once
  (:func:`tlcourse.features.extract_features`) and a logistic regression is fitted on them.
  A linear probe is a convex problem that converges in milliseconds on cached features, so it
  is trained to convergence rather than for ``epochs`` - its real-world advantage.
- ``stage_probe``: the same logistic regression on the globally pooled output of an *earlier*
  stage (``Budget.probe_stage``), the CS231n advice for little data far from ImageNet: the top
  stages are the most ImageNet-specific, the earlier ones more generic.
- ``partial``: the stages from ``partial_from`` up (and the head) train, the rest stays frozen.
  The frozen bottom's activations are cached once (``extract_features(stage=...)``) and only
  the top runs forward and backward, which is why partial fine-tuning is cheap on a CPU.
- ``full``: every layer of the pretrained network trains.
- ``scratch``: the same architecture from random weights; every layer trains.

The three network strategies use :func:`tlcourse.train.fit` with ``epochs``, ``lr`` and
``batch_size`` from the :class:`Budget`, no augmentation (cached activations cannot be
augmented, so nobody gets it) and no early stopping: the test images never choose an epoch.
After training, their BatchNorm running statistics are re-estimated on the training images
(``torch.optim.swa_utils.update_bn``; ``Budget.recalibrate_bn``). With a few dozen steps the
running averages still remember ImageNet (or, from scratch, their initial values), and a
model evaluated with them predicts almost one class for every image: the test would measure
that lag, not the strategy.
With ``Budget.cache_pool`` every frozen pass runs once per dataset, not once per run: the probes
and partial fine-tuning read their training rows out of the activations of the whole training
pool (found by image path), so a grid of many seeds and sizes costs one pass over the pool per
cached stage.
The train/test split is fixed by ``Budget.split_seed``; a run's ``seed`` picks its training
images, the new head's initial weights and the batch order, so the spread over seeds shows
how much of a difference is luck.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._checks import int_at_least
from .data import (
    ImageTensorDataset,
    eval_transform,
    get_info,
    limit_images,
    load_dataset,
    split_dataset,
    take_per_class,
)
from .device import pick_device, seed_everything
from .errors import InvalidParameterError, unknown_name
from .features import extract_features
from .models import create_model, get_spec, split_at
from .course.params import check_parameters
from .train import evaluate, fit

#: Strategy name -> the label plots and tables use, from least to most trained.
STRATEGIES: dict[str, str] = {
    "linear_probe": "linear probe",
    "stage_probe": "earlier-stage probe",
    "partial": "partial fine-tuning",
    "full": "full fine-tuning",
    "scratch": "from scratch",
}

#: The strategies that only fit a linear classifier on cached features (no network trains).
PROBES = ("linear_probe", "stage_probe")

#: Metrics a run reports (columns of :func:`run_grid`'s table).
METRICS: dict[str, str] = {
    "acc": "accuracy",
    "balanced_acc": "balanced accuracy",
}


@dataclass(frozen=True)
class Budget:
    """What every strategy gets; only the strategy differs between the runs of one grid.

    ``test_images`` caps the fixed test subset (stratified, chosen once by ``split_seed``) so
    evaluation stays cheap; ``None`` uses the whole test split. ``partial_from`` is the lowest
    stage that trains in partial fine-tuning (everything below it is frozen and cached);
    ``probe_stage`` is the stage whose pooled output the earlier-stage probe reads.
    ``cache_pool``: the frozen passes run once over the whole training pool and every run reads
    its rows from there, which pays off when a grid draws many (or large) samples from one pool;
    with ``False`` (the default) each run passes only its own images, cheaper for a few small
    runs on a large pool. Both give the same features.
    """

    backbone: str = "mobilenet_v2"
    image_size: int = 64
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-3
    test_images: int | None = 200
    partial_from: str = "stage5"
    probe_stage: str = "stage4"
    cache_pool: bool = False
    device: str | torch.device = "auto"
    split_seed: int = 0
    recalibrate_bn: bool = True

    def __post_init__(self) -> None:
        check_parameters(
            backbone=self.backbone, image_size=self.image_size, epochs=self.epochs,
            batch_size=self.batch_size, lr=self.lr, max_images=self.test_images,
            seed=self.split_seed, device=str(self.device),
        )
        body = [name for name, _ in get_spec(self.backbone).stages]
        if self.partial_from not in body[1:]:
            raise unknown_name("partial_from stage (the lowest stage that trains)", self.partial_from, body[1:])
        if self.probe_stage not in body:
            raise unknown_name("probe_stage (the stage whose pooled output the earlier-stage probe reads)",
                               self.probe_stage, body)

    @property
    def boundary(self) -> str:
        """The last frozen stage of partial fine-tuning: its output is what gets cached."""
        body = [name for name, _ in get_spec(self.backbone).stages]
        return body[body.index(self.partial_from) - 1]


@dataclass
class Task:
    """A dataset prepared for a budget: the training pool and the fixed test subset."""

    name: str
    domain: str
    classes: list[str]
    train: ImageTensorDataset  # the whole training split, with the eval transform
    test: ImageTensorDataset  # the fixed test subset, with the eval transform
    val: ImageTensorDataset  # the validation split (as many images as the test subset), with the eval transform


@dataclass
class Run:
    """One run's outcome: test predictions, and what it cost."""

    dataset: str
    domain: str
    strategy: str
    n_per_class: int | None
    seed: int
    n_train: int
    trainable_params: int
    seconds: float
    probs: torch.Tensor  # (N, C) test-set class probabilities
    labels: torch.Tensor  # (N,) true test labels
    classes: list[str] = field(default_factory=list)
    train_counts: dict[str, int] = field(default_factory=dict)
    val_probs: torch.Tensor | None = None  # (M, C) validation probabilities, when asked for
    val_labels: torch.Tensor | None = None

    @property
    def preds(self) -> torch.Tensor:
        return self.probs.argmax(1)

    @property
    def acc(self) -> float:
        return float((self.preds == self.labels).float().mean())

    @property
    def balanced_acc(self) -> float:
        """The mean of the per-class recalls: a classifier that ignores a rare class scores low."""
        recalls = [float((self.preds[self.labels == c] == c).float().mean())
                   for c in range(self.probs.shape[1]) if (self.labels == c).any()]
        return float(np.mean(recalls))

    def row(self) -> dict[str, Any]:
        """The run as one row of :func:`run_grid`'s table."""
        return {
            "dataset": self.dataset, "domain": self.domain, "n_per_class": self.n_per_class,
            "strategy": self.strategy, "seed": self.seed, "acc": self.acc,
            "balanced_acc": self.balanced_acc, "n_train": self.n_train,
            "trainable_params": self.trainable_params, "seconds": self.seconds,
        }

    def __repr__(self) -> str:
        size = f"{self.n_per_class}/class" if self.n_per_class else f"{self.n_train} images"
        return (f"Run({self.dataset}, {STRATEGIES.get(self.strategy, self.strategy)}, {size}, seed {self.seed}: "
                f"acc {self.acc:.3f}, balanced acc {self.balanced_acc:.3f}, {self.seconds:.1f} s)")


_TASKS: dict[tuple, Task] = {}


def load_task(dataset: str, budget: Budget) -> Task:
    """Load ``dataset`` at the budget's size, split it, and fix the test subset (cached per budget)."""
    info = get_info(dataset)
    key = (dataset, budget.image_size, budget.backbone, budget.split_seed, budget.test_images)
    if key not in _TASKS:
        data = load_dataset(dataset, budget.image_size, progress=False)
        preprocessing = get_spec(budget.backbone).preprocessing.at(budget.image_size)
        splits = split_dataset(data, seed=budget.split_seed)
        test = limit_images(splits.test, budget.test_images, seed=budget.split_seed)
        val = limit_images(splits.val, budget.test_images, seed=budget.split_seed)
        transform = eval_transform(preprocessing)
        _TASKS[key] = Task(dataset, info.domain, list(data.classes), splits.train.with_transform(transform),
                           test.with_transform(transform), val.with_transform(transform))
    return _TASKS[key]


def training_sample(task: Task, n_per_class: int | None, seed: int, max_train: int | None = None) -> ImageTensorDataset:
    """The training images of one run.

    ``n_per_class``: that many of every class (a balanced small-data sample). ``None``: the
    training split's own class balance, at most ``max_train`` images (stratified), which is
    how an imbalanced dataset such as ELPV is met in practice.
    """
    if n_per_class is not None:
        if max_train is not None:
            raise InvalidParameterError(
                f"Give either n_per_class (a balanced sample) or max_train (the natural class balance), "
                f"not both (got n_per_class={n_per_class}, max_train={max_train})."
            )
        return take_per_class(task.train, n_per_class, seed=seed)
    if max_train is not None:
        max_train = int_at_least(max_train, "max_train", 2, hint="Or None for every training image.")
    return limit_images(task.train, max_train, seed=seed)


def _check_weights(class_weights: Sequence[float] | torch.Tensor | None, num_classes: int) -> torch.Tensor | None:
    if class_weights is None:
        return None
    w = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
    if w.numel() != num_classes or not torch.isfinite(w).all() or (w <= 0).any():
        raise InvalidParameterError(
            f"class_weights must be {num_classes} positive numbers, one per class, got {class_weights!r}."
        )
    return w


def _probe(train_feats, eval_feats: list, weights: torch.Tensor | None) -> list[torch.Tensor]:
    """Logistic regression on standardised features; the probabilities (N, C) of each of ``eval_feats``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, ytr = train_feats.numpy()
    class_weight = None if weights is None else {i: float(v) for i, v in enumerate(weights)}
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight=class_weight))
    clf.fit(xtr, ytr)
    out = []
    for feats in eval_feats:
        x, _ = feats.numpy()
        probs = np.zeros((len(x), max(int(ytr.max()) + 1, len(train_feats.classes))), dtype=np.float32)
        probs[:, clf.classes_] = clf.predict_proba(x)
        out.append(torch.from_numpy(probs))
    return out


def _pool_rows(task: Task, train: ImageTensorDataset) -> torch.Tensor:
    """Where the images of ``train`` (a sample of ``task.train``) sit in the pool, by path."""
    where = {path: i for i, path in enumerate(task.train.paths)}
    missing = [p for p in train.paths if p not in where]
    if missing:
        raise InvalidParameterError(
            f"{len(missing)} training image(s) are not in {task.name}'s training pool (e.g. {missing[0]!r}); "
            "draw the sample from load_task(...).train with training_sample()."
        )
    return torch.tensor([where[p] for p in train.paths], dtype=torch.long)


def _frozen_rows(model: nn.Module, task: Task, train: ImageTensorDataset, evaluated: list[ImageTensorDataset],
                 stage: str | None, device: torch.device, pooled: bool, cache_pool: bool, progress: bool):
    """Frozen-backbone outputs for the sample and for each of ``evaluated`` (the test subset, and
    the validation split when asked for); with ``cache_pool`` computed once for the whole pool.

    ``stage=None``: the penultimate features; otherwise the activations after ``stage``,
    globally average-pooled when ``pooled`` (what a probe reads) or raw (what the top trains on).
    """
    from .features import FeatureSet

    if cache_pool:
        pool = extract_features(model, task.train, stage=stage, device=device, progress=progress)
        rows = _pool_rows(task, train)
    else:
        pool = extract_features(model, train, stage=stage, device=device, progress=progress)
        rows = torch.arange(len(train))

    def shaped(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if pooled and x.ndim == 4 else x

    others = [extract_features(model, d, stage=stage, device=device, progress=progress) for d in evaluated]
    return (FeatureSet(shaped(pool.features[rows]), pool.labels[rows], pool.classes),
            [FeatureSet(shaped(f.features), f.labels, f.classes) for f in others])


def _recalibrate_bn(module: nn.Module, train: Any, device: torch.device) -> None:
    """Re-estimate BatchNorm running statistics on the training data (no gradients, no weight change)."""
    from torch.optim.swa_utils import update_bn
    from torch.utils.data import DataLoader

    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        with torch.no_grad():
            update_bn(DataLoader(train, batch_size=64, shuffle=False), module, device=device)


def run_strategy(
    strategy: str,
    dataset: str,
    n_per_class: int | None,
    seed: int,
    budget: Budget,
    *,
    max_train: int | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    validation: bool = False,
    progress: bool = False,
) -> Run:
    """Train ``strategy`` on ``n_per_class`` images per class of ``dataset`` with ``seed``; test it.

    Everything else comes from ``budget``, so two runs differ only in what you pass here.
    ``class_weights`` (one positive number per class) weights the loss,
    ``nn.CrossEntropyLoss(weight=...)`` for the networks and ``class_weight`` for the probe.
    ``validation``: also predict the task's validation images (``Run.val_probs``), e.g. to fit
    a temperature (:mod:`tlcourse.calibration`) without touching the test images.
    """
    if strategy not in STRATEGIES:
        raise unknown_name("strategy", strategy, STRATEGIES)
    seed = int_at_least(seed, "seed", 0)
    task = load_task(dataset, budget)
    train = training_sample(task, n_per_class, seed, max_train)
    weights = _check_weights(class_weights, len(task.classes))
    device = pick_device(budget.device)
    evaluated = [task.test, task.val] if validation else [task.test]
    seed_everything(seed)
    start = time.perf_counter()
    model, _ = create_model(budget.backbone, len(task.classes), pretrained=strategy != "scratch", seed=seed)
    fit_args = dict(epochs=budget.epochs, lr=budget.lr, batch_size=budget.batch_size, device=device,
                    seed=seed, progress=progress, label=f"{strategy} on {dataset}",
                    criterion=nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None))
    if strategy in PROBES:
        for p in model.parameters():
            p.requires_grad = False
        stage = budget.probe_stage if strategy == "stage_probe" else None
        train_feats, eval_feats = _frozen_rows(model, task, train, evaluated, stage, device, True, budget.cache_pool, progress)
        probs_of = _probe(train_feats, eval_feats, weights)
        trainable = train_feats.dim * len(task.classes) + len(task.classes)
    elif strategy == "partial":
        bottom, top = split_at(model, budget.boundary)
        for p in bottom.parameters():
            p.requires_grad = False
        train_acts, eval_acts = _frozen_rows(model, task, train, evaluated, budget.boundary, device, False,
                                             budget.cache_pool, progress)
        fit(top, train_acts, **fit_args)
        if budget.recalibrate_bn:
            _recalibrate_bn(top, train_acts, device)
        probs_of = [evaluate(top, acts, device=device)["probs"] for acts in eval_acts]
        trainable = sum(p.numel() for p in top.parameters() if p.requires_grad)
    else:  # full fine-tuning or from scratch: every layer trains
        fit(model, train, **fit_args)
        if budget.recalibrate_bn:
            _recalibrate_bn(model, train, device)
        probs_of = [evaluate(model, d, device=device)["probs"] for d in evaluated]
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    seconds = time.perf_counter() - start
    val_probs, val_labels = (probs_of[1].float().cpu(), task.val.labels.clone()) if validation else (None, None)
    return Run(
        dataset=dataset, domain=task.domain, strategy=strategy, n_per_class=n_per_class, seed=seed,
        n_train=len(train), trainable_params=int(trainable), seconds=seconds, probs=probs_of[0].float().cpu(),
        labels=task.test.labels.clone(), classes=list(task.classes), train_counts=train.class_counts(),
        val_probs=val_probs, val_labels=val_labels,
    )


def _sizes_by_dataset(datasets: Sequence[str], sizes: Sequence[int] | Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """``sizes`` for every dataset, or each dataset's own list (a pool of 240 ants and bees
    cannot give the 1,000 X-rays per class that show what a large dataset changes)."""
    if isinstance(sizes, Mapping):
        unknown = [d for d in sizes if d not in datasets]
        missing = [d for d in datasets if d not in sizes]
        if unknown or missing:
            raise InvalidParameterError(
                f"run_grid: sizes has one list per dataset; missing {missing or 'none'}, not in datasets {unknown or 'none'}."
            )
        per = {d: sizes[d] for d in datasets}
    else:
        per = {d: sizes for d in datasets}
    for d, values in per.items():
        if isinstance(values, (str, bytes, Mapping)) or not len(values):
            raise InvalidParameterError(f"run_grid: sizes for {d} must be a non-empty list, got {values!r}.")
        for n in values:
            int_at_least(n, f"sizes for {d}", 1)
    return {d: [int(n) for n in values] for d, values in per.items()}


def run_grid(
    datasets: Sequence[str],
    sizes: Sequence[int] | Mapping[str, Sequence[int]],
    strategies: Sequence[str],
    seeds: Sequence[int],
    budget: Budget,
    *,
    largest: Mapping[str, int] | None = None,
    validation: bool = False,
    progress: bool = True,
    keep_runs: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, list[Run]]:
    """Every combination of dataset x images-per-class x strategy x seed, one row per run.

    ``sizes`` is one list for every dataset, or a mapping dataset -> its own list.
    ``largest`` (strategy -> images per class) skips a strategy above that size: full
    fine-tuning and training from scratch cost time in proportion to the images, the cached
    strategies hardly do, so a grid can afford the cheap ones on the large column and the
    costly ones only where they fit. A skipped cell is absent from the table (blank in
    :func:`decision_table`), never filled in. ``validation`` is passed on to :func:`run_strategy`.

    The table has the columns of :meth:`Run.row`. With ``keep_runs`` the :class:`Run` objects
    (test probabilities included) come back too, as ``(table, runs)``.
    """
    from tqdm.auto import tqdm

    for what, values in (("datasets", datasets), ("strategies", strategies), ("seeds", seeds)):
        if isinstance(values, (str, bytes)) or not len(values):
            raise InvalidParameterError(f"run_grid: {what} must be a non-empty list, got {values!r}.")
    for s in strategies:
        if s not in STRATEGIES:
            raise unknown_name("strategy", s, STRATEGIES)
    for name in datasets:
        get_info(name)
    per_dataset = _sizes_by_dataset(datasets, sizes)
    largest = dict(largest or {})
    for s, n in largest.items():
        if s not in strategies:
            raise unknown_name("strategy in largest", s, strategies)
        int_at_least(n, f"largest[{s!r}]", 1)
    combos = [(d, n, s, seed) for seed in seeds for d in datasets for n in per_dataset[d] for s in strategies
              if n <= largest.get(s, n)]
    runs: list[Run] = []
    bar = tqdm(combos, desc="runs", disable=not progress)
    for d, n, s, seed in bar:
        bar.set_postfix_str(f"{d}, {n}/class, {s}, seed {seed}")
        runs.append(run_strategy(s, d, n, seed, budget, validation=validation))
    table = pd.DataFrame([r.row() for r in runs])
    return (table, runs) if keep_runs else table


def check_table(runs: pd.DataFrame, metric: str, where: str) -> None:
    """Refuse anything but :func:`run_grid`'s table with a ``metric`` column (``where`` names the caller)."""
    if not isinstance(runs, pd.DataFrame) or runs.empty:
        raise InvalidParameterError(f"{where}: expected run_grid's table (a non-empty DataFrame), got {type(runs).__name__}.")
    if metric not in runs.columns:
        raise unknown_name("metric", metric, [c for c in METRICS if c in runs.columns])


def ordered_strategies(names: Sequence[str]) -> list[str]:
    """The strategies among ``names``, from least to most trained (the order of :data:`STRATEGIES`)."""
    return [s for s in STRATEGIES if s in set(names)]


def summarise(runs: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """Mean, standard deviation, min and max over seeds of each dataset x size x strategy."""
    check_table(runs, metric, "summarise")
    grouped = runs.groupby(["dataset", "n_per_class", "strategy"], sort=False)[metric]
    table = grouped.agg(["mean", "std", "min", "max", "count"]).rename(columns={"count": "seeds"})
    table["std"] = table["std"].fillna(0.0)  # one seed: no spread to show
    rank = {s: i for i, s in enumerate(STRATEGIES)}
    return table.sort_index(key=lambda level: level.map(rank) if level.name == "strategy" else level)


def column_label(runs: pd.DataFrame, dataset: str, n_per_class: int) -> str:
    domain = runs.loc[runs["dataset"] == dataset, "domain"].iloc[0]
    return f"{dataset} ({domain}), {n_per_class}/class"


def decision_table(runs: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """Strategies (rows) x dataset-and-size (columns), mean over seeds: the decision matrix."""
    check_table(runs, metric, "decision_table")
    mean = runs.groupby(["dataset", "n_per_class", "strategy"], sort=False)[metric].mean()
    columns = list(dict.fromkeys(zip(runs["dataset"], runs["n_per_class"])))
    table = pd.DataFrame(
        {column_label(runs, d, n): [mean.get((d, n, s), np.nan) for s in ordered_strategies(runs["strategy"])]
         for d, n in columns},
        index=[STRATEGIES[s] for s in ordered_strategies(runs["strategy"])],
    )
    table.index.name = "strategy"
    table.columns.name = "dataset (domain), images per class"
    return table


def explore(runs: pd.DataFrame, metric: str = "acc"):
    """Dropdowns for dataset and size that redraw :func:`tlcourse.plots.plot_strategies` from the finished runs.

    Nothing is retrained: the widget only re-plots the table. Headless (``tlcourse run``), or
    without ipywidgets, it returns the first cell's figure instead, so the notebook still
    shows the default view.
    """
    from .course.results import headless
    from .plots import plot_strategies

    check_table(runs, metric, "explore")
    datasets = list(dict.fromkeys(runs["dataset"]))
    sizes = list(dict.fromkeys(runs["n_per_class"]))
    if headless():
        return plot_strategies(runs, datasets[0], sizes[0], metric)
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        return plot_strategies(runs, datasets[0], sizes[0], metric)
    pick_dataset = widgets.Dropdown(options=datasets, description="dataset")
    pick_size = widgets.Dropdown(options=sizes, description="per class")
    out = widgets.Output()

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            display(plot_strategies(runs, pick_dataset.value, pick_size.value, metric))

    pick_dataset.observe(redraw, names="value")
    pick_size.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([pick_dataset, pick_size]), out])


__all__ = [
    "Budget",
    "METRICS",
    "PROBES",
    "Run",
    "STRATEGIES",
    "Task",
    "check_table",
    "column_label",
    "decision_table",
    "explore",
    "load_task",
    "ordered_strategies",
    "run_grid",
    "run_strategy",
    "summarise",
    "training_sample",
]
