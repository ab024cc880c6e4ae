"""Lesson 07's training recipe alone, over seeds: what decides its test accuracy, in under half the lesson's time.

The lesson runs its recipe among plots, reports, Grad-CAM, the export and the shift section. This
script runs only the part that decides the test accuracy, with the lesson's own calls, so a
variant of the recipe can be screened over three seeds (three splits) in minutes:

- activations cached at the stage boundary for each view of each photo (``extract_mirror_pairs``:
  the photo and its mirror image, and with ``--augmentation flips`` both upside down as well);
- phase 1: ``TwoPhasePlan.phase1`` and ``fit`` on the features above the boundary
  (``features_above``) of the training photos;
- phase 2: ``TwoPhasePlan.phase2`` (the lesson's unfreezing, parameter-group and warm-up + cosine
  cell, packaged) on the cached views, one drawn per photo per epoch; ``fit`` keeps the best epoch
  by validation loss;
- the test accuracy of one view, of all views averaged, and of the one of the two that validation
  loss chooses (the lesson's rule, and its reported number).

``--size2 S --epochs2 E`` is progressive resizing: the last E of the phase-2 epochs train on
activations of the photos decoded at S pixels (same model, optimizer and schedule, continued), and
validation and test photos are read at S. The seed draws the split, as in the lesson.
``--precision`` is the lesson's ``precision`` (``auto``: bfloat16 autocast on a CPU with bfloat16
units, float32 elsewhere; ``float32``).

    python bench/plant_recipe.py                          # the lesson's defaults, seeds 0 1 2
    python bench/plant_recipe.py --augmentation flip      # left-right flips only
    python bench/plant_recipe.py --image-size 128 --precision float32   # the defaults before 2026-12-02 (tenth session)
    python bench/plant_recipe.py --image-size 128 --size2 160 --epochs2 2  # 4 epochs at 128 px, then 2 at 160 px

Seconds are wall-clock under whatever else the machine runs (the header prints the load); compare
variants run one after another, as ratios. Cached activations are reused between runs that share a
split and a size (``TLCOURSE_CACHE``); pass ``--cold`` to time the caching too.
"""
from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cold_feature_cache, footer, header, parser, torch_threads  # noqa: E402

import torch.nn.functional as F  # noqa: E402

from tlcourse import data, models  # noqa: E402
from tlcourse.features import extract_mirror_pairs, features_above  # noqa: E402
from tlcourse.device import pick_device  # noqa: E402
from tlcourse.precision import PRECISION_SETTINGS, amp_for  # noqa: E402
from tlcourse.train import TwoPhasePlan, accuracy, evaluate, fit  # noqa: E402


def arguments(argv: list[str] | None = None):
    p = parser(__doc__.splitlines()[0], image_size=160, epochs=6, n_per_class=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--head-epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=1e-3, help="phase 1: the head's learning rate")
    p.add_argument("--base-lr", type=float, default=1e-3)
    p.add_argument("--finetune-head-lr", type=float, default=2e-3)
    p.add_argument("--unfreeze-top", type=int, default=4)
    p.add_argument("--augmentation", choices=("flip", "flips"), default="flips",
                   help="phase 2's cached views: flip (photo, mirror image) or flips (and both upside down)")
    p.add_argument("--size2", type=int, default=None, help="progressive resizing: the second size")
    p.add_argument("--epochs2", type=int, default=2, help="phase-2 epochs at --size2 (the last ones)")
    p.add_argument("--precision", choices=PRECISION_SETTINGS, default="auto",
                   help="the lesson's precision: auto (bfloat16 where the CPU has bfloat16 units) or float32")
    p.add_argument("--cold", action="store_true", help="an empty feature cache: time the caching as well")
    args = p.parse_args(argv)
    if args.quick:
        args.image_size, args.n_per_class, args.head_epochs, args.epochs, args.seeds = 64, 4, 1, 2, [0]
        args.size2 = 80 if args.size2 else None
        args.epochs2 = 1
    if args.size2 is not None and not 0 < args.epochs2 < args.epochs:
        p.error(f"--epochs2 must be between 1 and --epochs - 1 ({args.epochs - 1}), got {args.epochs2}")
    return args


def splits_at(size: int, seed: int, args):
    """Train, validation and test photos of the lesson's split, decoded at ``size`` pixels."""
    plants = data.load_dataset("plantvillage", size, progress=False)
    splits = data.split_dataset(plants, seed=seed)
    train = splits.train if args.n_per_class is None else data.take_per_class(splits.train, args.n_per_class, seed=seed)
    tf = data.eval_transform(models.get_spec(args.backbone).preprocessing.at(size))
    return plants.num_classes, train.with_transform(tf), splits.val.with_transform(tf), splits.test.with_transform(tf)


def run_seed(seed: int, args) -> dict:
    start = time.perf_counter()
    num_classes, train, val, test = splits_at(args.image_size, seed, args)
    model, _ = models.create_model(args.backbone, num_classes, seed=seed)
    plan = TwoPhasePlan(head_epochs=args.head_epochs, finetune_epochs=args.epochs, head_lr=args.lr, base_lr=args.base_lr,
                        unfreeze_top=args.unfreeze_top, finetune_head_lr=args.finetune_head_lr)
    names = models.stage_names(model)
    boundary = names[len(names) - 2 - args.unfreeze_top]
    upside_down = args.augmentation == "flips"
    amp = amp_for(args.precision, pick_device("auto"))

    def views(*datasets):
        return [extract_mirror_pairs(model, d, stage=boundary, upside_down=upside_down, progress=False, amp=amp)
                for d in datasets]

    pairs = views(train, val)
    steps = math.ceil(len(train) / args.batch_size)
    optimizer, scheduler = plan.phase1(model, steps_per_epoch=steps)
    fit(models.get_head(model), *(features_above(model, v.photo, after=boundary, progress=False, amp=amp) for v in pairs),
        epochs=args.head_epochs, optimizer=optimizer, scheduler=scheduler, batch_size=args.batch_size, seed=seed,
        freeze_bn=False, progress=False, amp=amp)

    optimizer, scheduler = plan.phase2(model, steps_per_epoch=steps)
    _, top = models.split_at(model, boundary)
    stints = [(args.image_size, args.epochs - (args.epochs2 if args.size2 else 0))]
    if args.size2:
        stints.append((args.size2, args.epochs2))
    phase2 = 0.0
    for size, epochs in stints:
        if size != args.image_size:
            _, train, val, test = splits_at(size, seed, args)
            pairs = views(train, val)
        t0 = time.perf_counter()
        fit(top, pairs[0], pairs[1].photo, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
            batch_size=args.batch_size, seed=seed, progress=False, amp=amp)
        phase2 += time.perf_counter() - t0
    val_views, test_views = pairs[1], views(test)[0]

    yv, y = val_views.photo.labels, test_views.photo.labels
    v_each, t_each = ([evaluate(top, view, amp=amp)["probs"] for view in vs.views] for vs in (val_views, test_views))
    v_avg, t_avg = sum(v_each) / len(v_each), sum(t_each) / len(t_each)
    use_avg = F.nll_loss(v_avg.clamp_min(1e-12).log(), yv) < F.nll_loss(v_each[0].clamp_min(1e-12).log(), yv)
    return {"seed": seed, "test": accuracy(t_avg if use_avg else t_each[0], y), "one_view": accuracy(t_each[0], y),
            "flip_average": accuracy(t_avg, y), "flip_chosen": bool(use_avg), "val_one_view": accuracy(v_each[0], yv),
            "n_test": len(y), "phase2_s": phase2, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> list[dict]:
    args = arguments(argv)
    header("lesson 07's recipe over seeds (test accuracy of the lesson's rule, one view, average of the views)", args)
    rows = []
    with torch_threads(args.threads), (cold_feature_cache() if args.cold else contextlib.nullcontext()):
        for seed in args.seeds:
            r = run_seed(seed, args)
            rows.append(r)
            print(f"seed {seed}: test {r['test']:.1%} (one view {r['one_view']:.1%}, average of the views {r['flip_average']:.1%}, "
                  f"{'average' if r['flip_chosen'] else 'one view'} chosen on validation; {r['n_test']} test photos), "
                  f"phase 2 {r['phase2_s']:.0f} s, seed {r['seconds']:.0f} s", flush=True)
    for key in ("test", "one_view", "flip_average"):
        values = [r[key] for r in rows]
        print(f"{key}: mean {statistics.mean(values):.1%}, lowest {min(values):.1%}")
    print(f"phase 2: mean {statistics.mean(r['phase2_s'] for r in rows):.0f} s a seed")
    footer()
    return rows


if __name__ == "__main__":
    main()
