"""CPU inference over whole batches of 64 images vs over pieces of a few images (``forward_in_pieces``).

A batch of 64 photos at 128 px puts megabytes of activations through MobileNetV2's first stages
(96 channels at 64 x 64 after the first expansion: 1.5 MB an image in float32), far more than a
2-core machine's caches hold, so every layer streams its input from memory. The same images in
pieces of 16 stay in cache. ``tlcourse.train.loop.forward_in_pieces`` does that for
``evaluate`` and for ``extract_features``/``features_above`` on the CPU; this script times the
same real PlantVillage photos through a BatchNorm-folded, channels-last copy of the network, as
the extraction runs it, in three forms:

- the stages up to ``stage2`` (what lesson 07 caches per view of each photo);
- every stage but the head (the penultimate features of phase 1 and the probes);
- each with whole batches of ``--batch-size`` and through ``forward_in_pieces``.

    TLCOURSE_DATA=/work/shared/data python bench/bench_cpu_pieces.py --n-per-class 20 --repeats 3

The final ratio is whole-batch time / pieces time for the stages up to stage2, the fastest of
``--repeats`` alternating runs each.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, footer, header, parser, plants, print_ratio, timed, torch_threads  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from tlcourse.models import create_model, stage_sequence  # noqa: E402
from tlcourse.models.folding import fold_batchnorm  # noqa: E402
from tlcourse.train.loop import forward_in_pieces  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], image_size=128, n_per_class=20, batch_size=64, repeats=3)
    args = p.parse_args(argv)
    if args.quick:
        args.image_size, args.n_per_class, args.repeats = 64, 2, 1
    header("CPU inference: whole batches vs pieces of a few images", args)
    train, _ = plants(args.image_size, args.backbone, args.n_per_class)
    x = torch.stack([train[i][0] for i in range(len(train))]).contiguous(memory_format=torch.channels_last)
    model, _ = create_model(args.backbone, train.num_classes)
    seq = stage_sequence(model.eval())
    names = list(seq)
    nets = {"up to stage2": names[:names.index("stage2") + 1], "all but the head": names[:-1]}
    cpu = torch.device("cpu")
    rows = {}
    with torch_threads(args.threads), torch.inference_mode():
        for label, stages in nets.items():
            net = nn.Sequential(*(fold_batchnorm(seq[n]) for n in stages)).to(memory_format=torch.channels_last)

            def whole(net=net) -> dict:
                return {"seconds": timed(lambda: [net(b) for b in x.split(args.batch_size)])[1]}

            def pieces(net=net) -> dict:
                return {"seconds": timed(lambda: [forward_in_pieces(net, b, cpu) for b in x.split(args.batch_size)])[1]}

            best = best_of({"whole": whole, "pieces": pieces}, args.repeats)
            rows[label] = best
            per = {k: v["seconds"] / len(x) * 1000 for k, v in best.items()}
            print(f"{label:18s} {len(x)} images at {args.image_size} px: batches of {args.batch_size} "
                  f"{per['whole']:.2f} ms an image, in pieces {per['pieces']:.2f} ms an image "
                  f"({per['whole'] / per['pieces']:.2f}x)")
    footer()
    bottom = rows["up to stage2"]
    print_ratio("pieces_vs_whole", bottom["whole"]["seconds"] / bottom["pieces"]["seconds"])
    return rows


if __name__ == "__main__":
    main()
