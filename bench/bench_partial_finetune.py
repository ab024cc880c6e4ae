"""Boundary-cached partial fine-tuning vs the naive loop with the bottom frozen.

Fine-tuning only the top stages leaves the bottom frozen, so its activations never change.
The naive loop still runs the whole network forward every epoch (``fit`` on the full model,
bottom frozen). The cached way splits the model at the boundary (``split_at``), runs the
bottom once (``extract_features(stage=...)``, cold cache, counted), and trains only the top
on the stored activations (``fit(top, ...)``) - the same weights, the same updates.

Both train the same stages (everything after ``--boundary``) on the same real PlantVillage
images for the same epochs and validate every epoch. Target: at least 3x faster.

    TLCOURSE_DATA=/work/shared/data python bench/bench_partial_finetune.py
"""
from __future__ import annotations

from typing import Any

from _common import best_of, cold_feature_cache, footer, header, parser, plants, print_ratio, timed, torch_threads

from tlcourse.features import extract_features
from tlcourse.models import create_model, split_at, stage_names, stage_of_parameters
from tlcourse.train import fit


def partly_frozen(backbone: str, num_classes: int, boundary: str):
    """The model with every stage up to and including ``boundary`` frozen."""
    model, _ = create_model(backbone, num_classes, seed=0)
    names = stage_names(model)
    trainable = set(names[names.index(boundary) + 1:])
    stage_of = stage_of_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad = stage_of[name] in trainable
    return model, sorted(trainable, key=names.index)


def main() -> None:
    p = parser(__doc__.splitlines()[0], image_size=128, n_per_class=20, epochs=10, batch_size=32, repeats=1)
    p.add_argument("--boundary", default="stage4", help="last frozen stage (default stage4: train stage5, top, head)")
    args = p.parse_args()
    if args.quick:
        args.image_size, args.n_per_class, args.epochs, args.repeats, args.threads = 64, 1, 1, 1, 1
    header("boundary-cached partial fine-tuning vs the naive loop", args)
    train, val = plants(args.image_size, args.backbone, args.n_per_class)
    classes = train.num_classes
    _, trained_stages = partly_frozen(args.backbone, classes, args.boundary)
    print(f"# data: {len(train)} training and {len(val)} validation PlantVillage images at {args.image_size} px; "
          f"training {', '.join(trained_stages)} for {args.epochs} epochs, batch {args.batch_size}")
    lr = 1e-3

    def naive() -> dict[str, Any]:
        model, _ = partly_frozen(args.backbone, classes, args.boundary)
        history, seconds = timed(lambda: fit(model, train, val, epochs=args.epochs, lr=lr, batch_size=args.batch_size,
                                             device="cpu", progress=False, seed=0))
        return {"seconds": seconds, "val_acc": history.best["val_acc"]}

    def cached() -> dict[str, Any]:
        model, _ = partly_frozen(args.backbone, classes, args.boundary)
        _, top = split_at(model, args.boundary)
        with cold_feature_cache():
            (atr, ava), extract_s = timed(lambda: (
                extract_features(model, train, stage=args.boundary, batch_size=args.batch_size, device="cpu", progress=False),
                extract_features(model, val, stage=args.boundary, batch_size=args.batch_size, device="cpu", progress=False),
            ))
            history, top_s = timed(lambda: fit(top, atr, ava, epochs=args.epochs, lr=lr, batch_size=args.batch_size,
                                               device="cpu", progress=False, seed=0))
        shape = tuple(atr.features.shape[1:])
        return {"seconds": extract_s + top_s, "extract_s": extract_s, "top_s": top_s,
                "val_acc": history.best["val_acc"], "shape": shape}

    with torch_threads(args.threads):
        best = best_of({"naive": naive, "cached": cached}, args.repeats)
    n, c = best["naive"], best["cached"]
    print(f"naive (whole network forward every epoch): {n['seconds']:8.2f} s   best val_acc {n['val_acc']:.3f}")
    print(f"boundary-cached, total:                    {c['seconds']:8.2f} s   best val_acc {c['val_acc']:.3f}")
    print(f"  one-time bottom pass to {args.boundary} (cold):   {c['extract_s']:8.2f} s   activations {c['shape']} per image")
    print(f"  {args.epochs} epochs of the top alone:             {c['top_s']:8.2f} s")
    footer()
    print_ratio("partial_finetune_speedup", n["seconds"] / c["seconds"])


if __name__ == "__main__":
    main()
