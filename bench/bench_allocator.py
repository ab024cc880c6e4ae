"""A plain CPU forward pass with glibc's default allocator settings vs with mmap/trim tuned.

Profiling the other benchmarks showed up to half of a CPU forward pass spent in the kernel
(system time), on hundreds of thousands of minor page faults per pass: glibc's ``malloc``
serves large blocks (activation tensors are megabytes) with ``mmap`` and gives them back with
``munmap`` when freed, so every batch maps, zero-fills and faults in its activations afresh.
``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` and ``mallopt(M_TRIM_THRESHOLD, 1 GiB)`` keep those
blocks in the heap for reuse; the same can be set from outside with the environment
variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``, or by preloading jemalloc
or tcmalloc.

Each setting runs in its own child process (an allocator setting cannot be undone for
blocks already handed out), timing the same passes over the same real PlantVillage images.
Linux with glibc only; elsewhere the script says so and reports a ratio of 1.

    TLCOURSE_DATA=/work/shared/data python bench/bench_allocator.py
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import platform
import resource
import subprocess
import sys
import time

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)


def tune_glibc_malloc() -> bool:
    """Keep large freed blocks in the heap instead of returning them to the kernel."""
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))


def child(tuned: bool, image_size: int, n_per_class: int, batch_size: int, threads: int, repeats: int) -> dict:
    applied = tune_glibc_malloc() if tuned else False
    import torch

    from _common import penultimate, plain_forward, plants, torch_threads
    from tlcourse.models import create_model, get_spec

    images, _ = plants(image_size, "mobilenet_v2", n_per_class)
    pre = get_spec("mobilenet_v2").preprocessing.at(image_size)
    model, _ = create_model("mobilenet_v2", images.num_classes)
    bottom = penultimate(model).eval().to(memory_format=torch.channels_last)

    def one_pass() -> None:
        plain_forward(bottom, images.images, pre.normalize, batch_size)

    best = None
    with torch_threads(threads):
        one_pass()  # warm-up
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            one_pass()
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
            run = {"seconds": seconds, "system_s": after.ru_stime - before.ru_stime,
                   "minor_faults": after.ru_minflt - before.ru_minflt}
            if best is None or seconds < best["seconds"]:
                best = run
    return {"tuned": applied, "images": len(images), **best}


def main() -> None:
    from _common import footer, header, parser, print_ratio

    p = parser(__doc__.splitlines()[0], image_size=128, n_per_class=20, batch_size=32, repeats=3, threads=1)
    p.add_argument("--child", choices=["default", "tuned"], help=argparse.SUPPRESS)  # internal
    args = p.parse_args()
    if args.quick:
        args.image_size, args.n_per_class, args.repeats = 64, 1, 1
    if args.child:
        result = child(args.child == "tuned", args.image_size, args.n_per_class, args.batch_size, args.threads, args.repeats)
        print(json.dumps(result))
        return
    header("glibc malloc defaults vs mmap/trim thresholds raised, plain MobileNetV2 forward pass", args)
    runs = {}
    for mode in ("default", "tuned"):
        cmd = [sys.executable, __file__, "--child", mode, "--image-size", str(args.image_size),
               "--n-per-class", str(args.n_per_class), "--batch-size", str(args.batch_size),
               "--threads", str(args.threads), "--repeats", str(args.repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    if not runs["tuned"]["tuned"]:
        print("# this is not Linux with glibc: mallopt is unavailable, both runs used the defaults")
    for mode, r in runs.items():
        print(f"{mode:8s} {r['seconds']:6.2f} s for {r['images']} images ({r['images'] / r['seconds']:5.1f} img/s), "
              f"system time {r['system_s']:5.2f} s, {r['minor_faults']:,} minor page faults")
    footer()
    print_ratio("allocator_speedup", runs["default"]["seconds"] / runs["tuned"]["seconds"])


if __name__ == "__main__":
    main()
