"""Batch-1 CPU latency: PyTorch eager vs ONNX Runtime (float32) vs ONNX Runtime int8, at 1 and 2 threads.

For each backbone (MobileNetV2 and EfficientNet-Lite0 by default) the 15-class plant model is
exported with ``tlcourse.deploy.export_onnx`` (opset 18, free batch), quantised with
``tlcourse.deploy.quantize_int8`` (static, calibrated on training photos), and the three are
timed on one real normalised test photo with ``tlcourse.deploy.measure_latency`` (median of
``--repeats-per-call`` calls; PyTorch channels-last, ONNX Runtime plain layout), the thread
counts alternating within each backbone. Latency does not depend on the head's weights, so
the head stays as initialised. Two ratios, geometric means over backbones and thread counts:
``onnxruntime_vs_eager`` (PyTorch ms / ONNX Runtime ms: above 1, ONNX Runtime is faster) and
``int8_vs_fp32`` (ONNX Runtime float32 ms / int8 ms: above 1, int8 is faster).

    TLCOURSE_DATA=/work/shared/data python bench/bench_onnx.py
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from _common import footer, geometric_mean, header, parser, print_ratio

from tlcourse import data
from tlcourse.deploy import export_onnx, file_size_mb, load_onnx, measure_latency, quantize_int8
from tlcourse.models import create_model


def main() -> None:
    p = parser(__doc__.splitlines()[0], image_size=160)
    p.add_argument("--backbones", default="mobilenet_v2,efficientnet_lite0", help="comma-separated")
    p.add_argument("--thread-counts", default="1,2", help="comma-separated torch / ONNX Runtime thread counts")
    p.add_argument("--repeats-per-call", type=int, default=50, help="timed calls per latency (median)")
    p.add_argument("--calibration-per-class", type=int, default=4, help="training photos per class for int8")
    args = p.parse_args()
    backbones = args.backbones.split(",")
    threads = [int(t) for t in args.thread_counts.split(",")]
    if args.quick:
        backbones, threads, args.image_size, args.repeats_per_call, args.calibration_per_class = (
            ["mobilenet_v2"], [1], 64, 3, 1)
    header("batch-1 latency: PyTorch eager, ONNX Runtime float32, ONNX Runtime int8", args)
    plants = data.load_dataset("plantvillage", args.image_size, progress=False)
    splits = data.split_dataset(plants, seed=0)
    calibration = data.take_per_class(splits.train, args.calibration_per_class, seed=0).images
    photo = splits.test.images[:1]
    print(f"{'backbone':20s} {'thr':>3s} {'eager ms':>9s} {'ORT ms':>7s} {'int8 ms':>8s} "
          f"{'ORT/eager':>10s} {'int8/fp32':>10s} {'fp32 MB':>8s} {'int8 MB':>8s} {'load':>5s}")
    ort_speedups, int8_speedups = [], []
    with tempfile.TemporaryDirectory(prefix="tlcourse-bench-onnx-") as tmp:
        for name in backbones:
            model, pre = create_model(name, plants.num_classes, seed=0)
            pre = pre.at(args.image_size)
            fp32 = export_onnx(model, Path(tmp) / f"{name}.onnx", class_names=plants.classes, preprocessing=pre,
                               provenance={"backbone": name})
            int8 = quantize_int8(fp32, Path(tmp) / f"{name}_int8.onnx", pre.normalize(calibration))
            x = pre.normalize(photo)
            for t in threads:
                timing = dict(images=x, batch_size=1, repeats=args.repeats_per_call, threads=t, warmup=3)
                eager = measure_latency(model, channels_last=True, **timing)["median_ms"]
                ort = measure_latency(load_onnx(fp32, threads=t).model, channels_last=False, **timing)["median_ms"]
                q = measure_latency(load_onnx(int8, threads=t).model, channels_last=False, **timing)
                ort_speedups.append(eager / ort)
                int8_speedups.append(ort / q["median_ms"])
                print(f"{name:20s} {t:3d} {eager:9.2f} {ort:7.2f} {q['median_ms']:8.2f} {eager / ort:9.2f}x "
                      f"{ort / q['median_ms']:9.2f}x {file_size_mb(fp32):8.1f} {file_size_mb(int8):8.1f} {q['load']:5.2f}",
                      flush=True)
    footer()
    print_ratio("onnxruntime_vs_eager", geometric_mean(ort_speedups))
    print_ratio("int8_vs_fp32", geometric_mean(int8_speedups))


if __name__ == "__main__":
    main()
