"""bfloat16 mixed precision on the CPU vs float32: lesson 07's phase-2 training and its caching pass.

CPUs with bfloat16 units (Intel's AVX512-BF16 and AMX, AMD's Zen 4 and later) run convolutions
in bfloat16 several times faster than in float32; ``amp="bfloat16"`` (``tlcourse.precision``)
asks ``fit``, ``evaluate`` and ``extract_features`` for it. This script times, on real
PlantVillage photos and MobileNetV2:

- a phase-2 epoch of lesson 07: stage3, stage4, stage5, top and the head trained on the cached
  activations after stage2 (``train_one_epoch``, channels-last, AdamW), in float32, in bfloat16
  as the course runs it (strided depthwise convolutions kept in float32), and in bfloat16 for
  every layer;
- the backward pass of one strided depthwise convolution alone, the reason for that exception;
- the caching pass: the BatchNorm-folded stages up to stage2 (``extract_features``, no cache).

    TLCOURSE_DATA=/work/shared/data python bench/bench_bfloat16.py --image-size 160 --repeats 3

The last two lines are the ratios float32 time / bfloat16 time (above 1: bfloat16 is faster) of
the training epoch as the course runs it and of the caching pass, the fastest of ``--repeats``
alternating runs each. On a CPU without bfloat16 units the script says so and times the
emulation, which is what ``tlcourse.precision`` refuses to run there.
"""
from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, footer, header, parser, plants, print_ratio, timed, torch_threads  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from tlcourse import precision  # noqa: E402
from tlcourse.features import extract_features  # noqa: E402
from tlcourse.models import create_model, split_at, stage_of_parameters  # noqa: E402
from tlcourse.train import train_one_epoch  # noqa: E402
from tlcourse.train.loop import iterate_batches  # noqa: E402

BOUNDARY = "stage2"  # lesson 07's defaults: stage3, stage4, stage5 and top train above it


def _epoch_timer(top: nn.Module, acts, batch_size: int, amp, keep_float32: bool):
    """A variant for ``best_of``: one training epoch of a fresh copy of ``top`` (its set-up untimed)."""
    def run() -> dict:
        model = copy.deepcopy(top)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        switch = contextlib.nullcontext() if keep_float32 else mock.patch.object(
            precision, "_is_strided_depthwise", lambda m: False)
        with switch:
            _, seconds = timed(lambda: train_one_epoch(model, iterate_batches(acts, batch_size), optimizer,
                                                       device="cpu", amp=amp))
        return {"seconds": seconds}
    return run


def _depthwise_backward(amp) -> dict:
    conv = nn.Conv2d(192, 192, 3, stride=2, padding=1, groups=192, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(32, 192, 20, 20).contiguous(memory_format=torch.channels_last).requires_grad_(True)

    def step():
        with precision.autocast(torch.device("cpu"), amp):
            y = conv(x)
        y.float().sum().backward()

    step()
    return {"seconds": timed(lambda: [step() for _ in range(5)])[1] / 5}


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], image_size=160, n_per_class=30, batch_size=32, repeats=3)
    args = p.parse_args(argv)
    if args.quick:
        args.image_size, args.n_per_class, args.repeats = 64, 2, 1
    header("bfloat16 mixed precision vs float32 on the CPU (lesson 07's phase 2 and caching)", args)
    native = precision.cpu_has_bfloat16()
    print(f"# this CPU {'has' if native else 'has NO'} bfloat16 units"
          + ("" if native else ": bfloat16 is emulated below (the course refuses amp='bfloat16' here)"))
    train, _ = plants(args.image_size, args.backbone, args.n_per_class)
    model, _ = create_model(args.backbone, train.num_classes, seed=0)
    stage_of = stage_of_parameters(model)
    for name, param in model.named_parameters():
        param.requires_grad = stage_of[name] not in ("stem", "stage1", BOUNDARY)
    rows = {}
    with torch_threads(args.threads), mock.patch.object(precision, "cpu_has_bfloat16", lambda: True):
        acts = extract_features(model, train, stage=BOUNDARY, device="cpu", cache=False, progress=False)
        _, top = split_at(model, BOUNDARY)
        rows["training"] = best_of({
            "float32": _epoch_timer(top, acts, args.batch_size, False, True),
            "bfloat16": _epoch_timer(top, acts, args.batch_size, "bfloat16", True),
            "bfloat16, every layer": _epoch_timer(top, acts, args.batch_size, "bfloat16", False),
        }, args.repeats)
        rows["depthwise"] = best_of({"float32": lambda: _depthwise_backward(False),
                                     "bfloat16": lambda: _depthwise_backward("bfloat16")}, args.repeats)

        def extraction(amp):
            return lambda: {"seconds": timed(lambda: extract_features(
                model, train, stage=BOUNDARY, device="cpu", cache=False, progress=False, amp=amp))[1]}

        rows["caching"] = best_of({"float32": extraction(False), "bfloat16": extraction("bfloat16")}, args.repeats)
    n = len(train)
    for variant, r in rows["training"].items():
        print(f"phase-2 epoch, {variant:22s} {r['seconds'] / n * 1000:6.2f} ms a photo "
              f"({n} photos at {args.image_size} px, batch {args.batch_size})")
    dw = rows["depthwise"]
    print(f"strided depthwise convolution, forward + backward: float32 {dw['float32']['seconds'] * 1000:.2f} ms, "
          f"bfloat16 {dw['bfloat16']['seconds'] * 1000:.2f} ms ({dw['bfloat16']['seconds'] / dw['float32']['seconds']:.1f}x)")
    for variant, r in rows["caching"].items():
        print(f"caching pass up to {BOUNDARY}, {variant:9s} {r['seconds'] / n * 1000:6.2f} ms a photo")
    footer()
    training, caching = rows["training"], rows["caching"]
    print_ratio("bfloat16_training_speedup", training["float32"]["seconds"] / training["bfloat16"]["seconds"])
    print_ratio("bfloat16_caching_speedup", caching["float32"]["seconds"] / caching["bfloat16"]["seconds"])
    return rows


if __name__ == "__main__":
    main()
