"""What every benchmark script shares: arguments, real data, a cold cache, the ratio line.

Each benchmark compares two ways of doing the same work *in one run on one machine* and
prints the ratio: absolute timings move with the machine and its load, a ratio measured
minutes apart on the same cores mostly does not. Scripts print their figures, the machine
load before and after, and end with one line ``ratio NAME=VALUE`` that tests and CI parse.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tlcourse import data  # noqa: E402
from tlcourse.deploy import machine_load, torch_threads  # noqa: E402
from tlcourse.models import get_spec  # noqa: E402

T = TypeVar("T")


def parser(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The arguments every script takes; ``defaults`` sets each script's own full-run values.

    ``--quick`` shrinks everything to seconds (the test suite runs each script that way); its
    figures show that the script works, not how fast anything is.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs (figures meaningless)")
    p.add_argument("--threads", type=int, default=defaults.get("threads", 2), help="torch CPU threads (default 2)")
    p.add_argument("--backbone", default=defaults.get("backbone", "mobilenet_v2"))
    p.add_argument("--image-size", type=int, default=defaults.get("image_size", 128))
    p.add_argument("--n-per-class", type=int, default=defaults.get("n_per_class", 20),
                   help="training images per PlantVillage class (15 classes)")
    p.add_argument("--epochs", type=int, default=defaults.get("epochs", 10))
    p.add_argument("--batch-size", type=int, default=defaults.get("batch_size", 32))
    p.add_argument("--repeats", type=int, default=defaults.get("repeats", 1),
                   help="repeat each timed variant, alternating, and keep the fastest")
    return p


def header(title: str, args: argparse.Namespace) -> None:
    """Print what the figures depend on: settings, versions, cores, and the load right now."""
    load = machine_load()
    print(f"# {title}")
    print(f"# torch {torch.__version__}, {platform.machine()}, {load['cpus']} CPUs, {args.threads} torch threads")
    print(f"# settings: {', '.join(f'{k}={v}' for k, v in sorted(vars(args).items()))}")
    print(f"# load average at start: {load['load_1min']} (1 min), {load['load_5min']} (5 min)")
    if load["load_1min"] > load["cpus"]:
        print(f"# warning: the load ({load['load_1min']}) exceeds the {load['cpus']} CPUs: "
              "other programs share the cores; absolute figures are inflated, ratios less so")


def footer() -> None:
    load = machine_load()
    print(f"# load average at end: {load['load_1min']} (1 min), {load['load_5min']} (5 min)")


def print_ratio(name: str, value: float) -> None:
    """The final line every script prints, parsed by tests/test_bench.py."""
    print(f"ratio {name}={value:.2f}", flush=True)


def plants(image_size: int, backbone: str, n_per_class: int, *, n_val: int | None = None, seed: int = 0):
    """Real PlantVillage images (``TLCOURSE_DATA``): ``(train, val)`` views with the eval transform.

    ``n_per_class`` training images per class; ``n_val`` validation images per class (default
    a third of that, at least 1). Both are fixed-seed stratified subsets of the course's split.
    """
    dataset = data.load_dataset("plantvillage", image_size, progress=False)
    splits = data.split_dataset(dataset, seed=seed)
    pre = get_spec(backbone).preprocessing.at(image_size)
    transform = data.eval_transform(pre)
    train = data.take_per_class(splits.train, n_per_class, seed=seed).with_transform(transform)
    n_val = n_val if n_val is not None else max(1, n_per_class // 3)
    val = data.take_per_class(splits.val, n_val, seed=seed).with_transform(transform)
    return train, val


def penultimate(model: torch.nn.Module) -> torch.nn.Sequential:
    """Every stage but the head: the layers ``extract_features`` runs."""
    from tlcourse.models import stage_sequence

    return torch.nn.Sequential(*list(stage_sequence(model).values())[:-1])


@torch.inference_mode()
def plain_forward(bottom: torch.nn.Module, images: torch.Tensor, normalize, batch_size: int) -> torch.Tensor:
    """One plain pass of feature extraction: normalise, forward, pool, batch by batch
    (channels-last input; put ``bottom`` in channels-last first for the fast path)."""
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size]).contiguous(memory_format=torch.channels_last)
        out.append(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(bottom(x), 1), 1))
    return torch.cat(out)


@contextlib.contextmanager
def cold_feature_cache() -> Iterator[Path]:
    """An empty ``TLCOURSE_CACHE`` (and empty in-memory cache) for timing a cold extraction.

    Load datasets *before* entering: their decoded-tensor cache lives under the same root.
    """
    from tlcourse.features import clear_memory_cache

    before = os.environ.get("TLCOURSE_CACHE")
    with tempfile.TemporaryDirectory(prefix="tlcourse-bench-cache-") as tmp:
        os.environ["TLCOURSE_CACHE"] = tmp
        clear_memory_cache()
        try:
            yield Path(tmp)
        finally:
            clear_memory_cache()
            if before is None:
                os.environ.pop("TLCOURSE_CACHE", None)
            else:
                os.environ["TLCOURSE_CACHE"] = before


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``(fn(), seconds)`` by the wall clock."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def best_of(variants: dict[str, Callable[[], dict[str, Any]]], repeats: int) -> dict[str, dict[str, Any]]:
    """Run each variant ``repeats`` times, alternating, and keep each one's fastest run.

    A variant does its own set-up (building a fresh model is not what is being compared) and
    returns a dict with the ``"seconds"`` it timed. Alternating spreads a burst of load from
    other programs over all variants instead of penalising whichever happened to run during
    it; the minimum is the run least disturbed.
    """
    best: dict[str, dict[str, Any]] = {}
    for _ in range(max(1, repeats)):
        for name, fn in variants.items():
            result = fn()
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
    return best


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


__all__ = [
    "best_of", "cold_feature_cache", "footer", "geometric_mean", "header", "parser", "plants",
    "print_ratio", "timed", "torch_threads",
]
