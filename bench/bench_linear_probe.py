"""Cached-feature linear probe vs the same head trained through the frozen backbone.

With the backbone frozen, its output for an image never changes, so the naive loop repeats
the same forward pass every epoch. The cached probe runs the backbone once
(``tlcourse.features.extract_features``, cold cache: the one-time extraction is counted) and
then trains the linear head on the stored features for the same number of epochs.

Both variants train on the same real PlantVillage images, in batches of the same size, and
validate every epoch on the same validation images. Target (the course's CPU fast path): at
least 10x faster overall. The script also times a second experiment on the same images
(warm cache), which is what every experiment after the first costs.

    TLCOURSE_DATA=/work/shared/data python bench/bench_linear_probe.py
"""
from __future__ import annotations

from typing import Any

from _common import best_of, cold_feature_cache, footer, header, parser, plants, print_ratio, timed, torch_threads

from tlcourse.features import extract_features, train_linear_head
from tlcourse.models import create_model, get_head
from tlcourse.train import fit


def frozen_model(backbone: str, num_classes: int, seed: int):
    model, _ = create_model(backbone, num_classes, seed=seed)
    for p in model.parameters():
        p.requires_grad = False
    for p in get_head(model).parameters():
        p.requires_grad = True
    return model


def main() -> None:
    args = parser(__doc__.splitlines()[0], image_size=128, n_per_class=30, epochs=10, batch_size=32, repeats=1).parse_args()
    if args.quick:
        args.image_size, args.n_per_class, args.epochs, args.repeats, args.threads = 64, 1, 1, 1, 1
    header("cached-feature linear probe vs head trained through the frozen backbone", args)
    train, val = plants(args.image_size, args.backbone, args.n_per_class)
    classes = train.num_classes
    print(f"# data: {len(train)} training and {len(val)} validation PlantVillage images at {args.image_size} px, "
          f"{args.epochs} epochs, batch {args.batch_size}")
    lr = 1e-3

    def naive() -> dict[str, Any]:
        model = frozen_model(args.backbone, classes, 0)
        history, seconds = timed(lambda: fit(model, train, val, epochs=args.epochs, lr=lr, batch_size=args.batch_size,
                                             device="cpu", progress=False, seed=0))
        return {"seconds": seconds, "val_acc": history.best["val_acc"]}

    def cached() -> dict[str, Any]:
        model = frozen_model(args.backbone, classes, 0)
        with cold_feature_cache():
            (ftr, fva), extract_s = timed(lambda: (
                extract_features(model, train, batch_size=args.batch_size, device="cpu", progress=False),
                extract_features(model, val, batch_size=args.batch_size, device="cpu", progress=False),
            ))
            (_, history), head_s = timed(lambda: train_linear_head(ftr, fva, epochs=args.epochs, lr=lr,
                                                                   batch_size=args.batch_size, device="cpu"))
            # the next experiment on the same images (another lr, more epochs) finds the cache warm
            _, warm_s = timed(lambda: train_linear_head(
                extract_features(model, train, batch_size=args.batch_size, device="cpu", progress=False),
                extract_features(model, val, batch_size=args.batch_size, device="cpu", progress=False),
                epochs=args.epochs, lr=lr, batch_size=args.batch_size, device="cpu"))
        return {"seconds": extract_s + head_s, "extract_s": extract_s, "head_s": head_s, "warm_s": warm_s,
                "val_acc": history.best["val_acc"]}

    with torch_threads(args.threads):
        best = best_of({"naive": naive, "cached": cached}, args.repeats)
    n, c = best["naive"], best["cached"]
    print(f"naive (frozen backbone run every epoch): {n['seconds']:8.2f} s   best val_acc {n['val_acc']:.3f}")
    print(f"cached features, total:                  {c['seconds']:8.2f} s   best val_acc {c['val_acc']:.3f}")
    print(f"  one-time extraction (cold cache):      {c['extract_s']:8.2f} s")
    print(f"  {args.epochs} epochs of the linear head:         {c['head_s']:8.2f} s")
    print(f"  a second experiment, warm cache:       {c['warm_s']:8.2f} s   ({n['seconds'] / c['warm_s']:.0f}x faster than naive)")
    per_epoch = n["seconds"] / args.epochs
    print(f"naive seconds per epoch / extraction seconds: {per_epoch / c['extract_s']:.2f} "
          f"(the ratio cannot exceed epochs x this: {args.epochs * per_epoch / c['extract_s']:.1f})")
    footer()
    print_ratio("cached_probe_speedup", n["seconds"] / c["seconds"])


if __name__ == "__main__":
    main()
