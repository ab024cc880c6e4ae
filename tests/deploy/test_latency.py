"""Measuring deployment costs: latency, throughput, file sizes, thread count, machine load.

Speed itself is not asserted (a shared CI machine cannot promise it); what is: the summary
is consistent (min <= median <= p90, images/s from the median), measuring leaves the model as
it was (mode, memory layout) and the thread count as it was, and bad arguments are refused.
The model is MobileNetV2 with a 15-way head, timed on real normalised leaves.
"""
from __future__ import annotations

import math

import pytest
import torch

from tlcourse.deploy import file_size_mb, machine_load, measure_latency, saved_size_mb, throughput, torch_threads
from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.models import create_model


@pytest.fixture(scope="module")
def mobilenet() -> torch.nn.Module:
    model, _ = create_model("mobilenet_v2", 15)
    return model


def test_measure_latency_summarises_and_restores_the_model(mobilenet, small_plants):
    mobilenet.train()
    images = torch.stack([small_plants[i][0] for i in range(2)])  # two real leaves, normalised, 64 px
    out = measure_latency(mobilenet, batch_size=3, repeats=4, images=images, warmup=1, threads=1)
    assert out["batch_size"] == 3 and out["image_size"] == 64 and out["repeats"] == 4 and out["threads"] == 1
    assert out["min_ms"] <= out["median_ms"] <= out["p90_ms"]
    assert math.isclose(out["images_per_s"], 3000 / out["median_ms"])
    assert math.isclose(out["per_image_ms"], out["median_ms"] / 3)
    # measuring does not change the model the lesson keeps using
    assert mobilenet.training
    first_conv = next(p for p in mobilenet.parameters() if p.ndim == 4)
    assert first_conv.is_contiguous()


def test_measure_latency_keeps_a_channels_last_model_channels_last(mobilenet):
    mobilenet.to(memory_format=torch.channels_last)  # as fit() leaves it
    try:
        measure_latency(mobilenet, 32, repeats=1, warmup=0, channels_last=False, threads=1)
        first_conv = next(p for p in mobilenet.parameters() if p.ndim == 4)
        assert first_conv.is_contiguous(memory_format=torch.channels_last) and not first_conv.is_contiguous()
    finally:
        mobilenet.to(memory_format=torch.contiguous_format)


def test_throughput_is_images_per_second(mobilenet):
    assert throughput(mobilenet, 32, batch_size=2, repeats=2, warmup=0, threads=1) > 0


def test_measure_latency_refuses_bad_input(mobilenet, small_plants):
    with pytest.raises(CourseError, match="uint8"):
        measure_latency(mobilenet, images=small_plants.images[:1])
    with pytest.raises(InvalidParameterError, match="image_size=32"):
        measure_latency(mobilenet, 32, images=torch.zeros(1, 3, 64, 64))
    with pytest.raises(InvalidParameterError, match="repeats"):
        measure_latency(mobilenet, 32, repeats=0)
    with pytest.raises(InvalidParameterError, match="image_size"):
        measure_latency(mobilenet)


def test_torch_threads_restores():
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(InvalidParameterError):
        with torch_threads(0):
            pass


def test_sizes(mobilenet, tmp_path):
    params = sum(p.numel() for p in mobilenet.parameters())
    size = saved_size_mb(mobilenet)
    assert params * 4 / 1e6 < size < params * 4 / 1e6 * 1.05  # float32 weights + BatchNorm statistics
    path = tmp_path / "weights.pt"
    torch.save(mobilenet.state_dict(), path)
    assert file_size_mb(path) == path.stat().st_size / 1e6
    with pytest.raises(CourseError, match="No file"):
        file_size_mb(tmp_path / "missing.pt")


def test_machine_load_fields():
    load = machine_load()
    assert set(load) == {"load_1min", "load_5min", "load_15min", "cpus", "torch_threads"}
    assert load["cpus"] >= 1
