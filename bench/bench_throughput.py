"""Inference throughput (images/s) of each offline backbone at 224/160/128 px, channels-last or not.

Real PlantVillage images, normalised with each backbone's own preprocessing, one batch timed
repeatedly in eval mode under ``torch.inference_mode`` (``tlcourse.deploy.throughput``),
with a fixed number of CPU threads (default 2). The final ratio is the geometric mean, over
backbones and sizes, of the channels-last speed-up (the claim behind ``fit`` and
``extract_features`` switching to channels-last on the CPU).

    TLCOURSE_DATA=/work/shared/data python bench/bench_throughput.py
"""
from __future__ import annotations

from _common import footer, geometric_mean, header, parser, print_ratio

from tlcourse import data
from tlcourse.deploy import measure_latency
from tlcourse.models import OFFLINE_BACKBONES, create_model, get_spec


def main() -> None:
    p = parser(__doc__.splitlines()[0], batch_size=32, repeats=5)
    p.add_argument("--sizes", default="224,160,128", help="comma-separated image sizes in pixels")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.batch_size, args.repeats, args.threads = [64], 2, 1, 1
    header("inference throughput of the offline backbones", args)
    models = {name: create_model(name, 15)[0] for name in OFFLINE_BACKBONES}
    print(f"{'backbone':20s} {'px':>4s} {'contiguous img/s':>17s} {'channels-last img/s':>20s} {'speed-up':>9s} {'load':>5s}")
    speedups = []
    for size in sizes:
        plants = data.load_dataset("plantvillage", size, progress=False)
        raw = data.take_per_class(plants, max(1, -(-args.batch_size // plants.num_classes)), seed=0).images[: args.batch_size]
        for name, model in models.items():
            images = get_spec(name).preprocessing.normalize(raw)
            runs = {}
            for channels_last in (False, True):  # alternate layouts within a size: same load for both
                runs[channels_last] = measure_latency(model, batch_size=args.batch_size, repeats=args.repeats,
                                                      channels_last=channels_last, images=images, threads=args.threads,
                                                      warmup=1)
            plain, cl = runs[False]["images_per_s"], runs[True]["images_per_s"]
            speedups.append(cl / plain)
            print(f"{name:20s} {size:4d} {plain:17.1f} {cl:20.1f} {cl / plain:8.2f}x {runs[True]['load']:5.2f}", flush=True)
    footer()
    print_ratio("channels_last_speedup", geometric_mean(speedups))


if __name__ == "__main__":
    main()
