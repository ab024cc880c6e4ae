"""Feature extraction (``tlcourse.features.extract_features``, cold cache) vs one plain forward pass.

The plain forward pass is what running the network as given costs: the same backbone layers
over the same real PlantVillage images, batch by batch, normalised in one vectorised call per
batch, channels-last, under ``torch.inference_mode``, with nothing else. ``extract_features``
adds its plumbing: the cache key (hashes of the weights and of every image), a DataLoader that
applies the transform image by image, the layout conversions, and writing the result to disk;
and it runs a BatchNorm-folded copy of the layers (``tlcourse.models.fold_batchnorm``), which
computes the same features with less work. Target: the total extraction time is at most 1.3x
the plain forward pass.

The script also times the same plain pass through the folded layers (the floor for
``extract_features``) and each piece of the plumbing on its own, so a missed target names its
cause.

    TLCOURSE_DATA=/work/shared/data python bench/bench_extraction.py
"""
from __future__ import annotations

import io
from typing import Any

import torch

from _common import (
    best_of,
    cold_feature_cache,
    footer,
    header,
    parser,
    penultimate,
    plain_forward,
    plants,
    print_ratio,
    timed,
    torch_threads,
)

from tlcourse.features import _module_digest, extract_features
from tlcourse.models import create_model, fold_batchnorm, get_spec
from tlcourse.train import iterate_batches


def main() -> None:
    args = parser(__doc__.splitlines()[0], image_size=128, n_per_class=50, batch_size=32, repeats=2).parse_args()
    if args.quick:
        args.image_size, args.n_per_class, args.repeats, args.threads = 64, 1, 1, 1
    header("extract_features (cold cache) vs a plain forward pass", args)
    images, _ = plants(args.image_size, args.backbone, args.n_per_class)
    pre = get_spec(args.backbone).preprocessing.at(args.image_size)
    print(f"# data: {len(images)} PlantVillage images at {args.image_size} px, batch {args.batch_size}")
    model, _ = create_model(args.backbone, images.num_classes)
    model.eval()
    bottom = penultimate(model)

    def plain() -> dict[str, Any]:
        bottom.to(memory_format=torch.channels_last)
        feats, seconds = timed(lambda: plain_forward(bottom, images.images, pre.normalize, args.batch_size))
        bottom.to(memory_format=torch.contiguous_format)
        return {"seconds": seconds, "features": feats}

    folded = fold_batchnorm(bottom).to(memory_format=torch.channels_last)

    def plain_folded() -> dict[str, Any]:
        feats, seconds = timed(lambda: plain_forward(folded, images.images, pre.normalize, args.batch_size))
        return {"seconds": seconds, "features": feats}

    def extract(cache: bool) -> dict[str, Any]:
        with cold_feature_cache():
            fs, seconds = timed(lambda: extract_features(model, images, batch_size=args.batch_size, device="cpu",
                                                         cache=cache, progress=False))
        return {"seconds": seconds, "features": fs.features}

    with torch_threads(args.threads):
        with torch.inference_mode():  # warm-up: the first batch allocates and picks kernels
            bottom(pre.normalize(images.images[: args.batch_size]))
        best = best_of({"plain": plain, "folded": plain_folded, "extract": lambda: extract(True),
                        "extract_nocache": lambda: extract(False)}, args.repeats)
        # the plumbing, piece by piece
        _, fingerprint_s = timed(images.fingerprint)
        modules = list(bottom)  # the modules extract_features digests for its cache key
        _, digest_s = timed(lambda: _module_digest(modules))
        _, loader_s = timed(lambda: sum(len(y) for _, y in iterate_batches(images, args.batch_size)))
        _, vector_norm_s = timed(lambda: [pre.normalize(images.images[i:i + args.batch_size])
                                          for i in range(0, len(images), args.batch_size)])
        _, save_s = timed(lambda: torch.save({"features": best["extract"]["features"]}, io.BytesIO()))

    same = torch.allclose(best["plain"]["features"], best["extract"]["features"], atol=1e-4)
    plain_s, folded_s, extract_s, nocache_s = (best[k]["seconds"] for k in ("plain", "folded", "extract", "extract_nocache"))
    n = len(images)
    print(f"plain forward pass (network as given):   {plain_s:7.2f} s  ({n / plain_s:6.1f} img/s)")
    print(f"plain forward pass, BatchNorm folded:    {folded_s:7.2f} s  ({n / folded_s:6.1f} img/s, "
          f"{plain_s / folded_s:.2f}x faster)")
    print(f"extract_features, cold cache:            {extract_s:7.2f} s  ({n / extract_s:6.1f} img/s)")
    print(f"extract_features, cache=False:           {nocache_s:7.2f} s")
    print(f"extract_features / folded pass:          {extract_s / folded_s:7.2f}x  (the plumbing)")
    print(f"same features as the plain pass:         {same}")
    print("plumbing, timed alone:")
    print(f"  dataset fingerprint (sha1 of images):  {fingerprint_s:7.3f} s")
    print(f"  weights digest (sha1 of state_dict):   {digest_s:7.3f} s")
    print(f"  DataLoader, per-image transform:       {loader_s:7.3f} s  (vs {vector_norm_s:.3f} s normalising whole batches)")
    print(f"  serialising the features:              {save_s:7.3f} s")
    footer()
    print_ratio("extract_vs_forward", extract_s / plain_s)


if __name__ == "__main__":
    main()
