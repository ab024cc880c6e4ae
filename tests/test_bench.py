"""The benchmarks run and end with their ratio line; the measuring helpers they share behave.

Speed is *not* asserted here (a shared CI machine cannot promise it): ``bench/`` measures it,
and bench/README.md records the figures. These tests run each script with ``--quick`` on a
few real PlantVillage images, in this process (one torch import for all of them). The
measuring helpers themselves (tlcourse/deploy/latency.py) are tests/deploy/test_latency.py.
"""
from __future__ import annotations

import os
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch


BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = {
    "bench_linear_probe.py": "cached_probe_speedup",
    "bench_extraction.py": "extract_vs_forward",
    "bench_partial_finetune.py": "partial_finetune_speedup",
    "bench_throughput.py": "channels_last_speedup",
    "bench_allocator.py": "allocator_speedup",
    "bench_cpu_pieces.py": "pieces_vs_whole",
    "bench_onnx.py": ("onnxruntime_vs_eager", "int8_vs_fp32"),
    "bench_bfloat16.py": ("bfloat16_training_speedup", "bfloat16_caching_speedup"),
}
RATIO_LINE = re.compile(r"^ratio ([a-z0-9_]+)=(\d+\.\d+)$")


def test_every_script_is_listed():
    assert sorted(p.name for p in BENCH.glob("bench_*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_runs_quick_and_prints_its_ratio(script, monkeypatch, capsys, shared_data):
    cache_before = os.environ.get("TLCOURSE_CACHE")
    threads_before = torch.get_num_threads()
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", [script, "--quick"])
    runpy.run_path(str(BENCH / script), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    names = SCRIPTS[script] if isinstance(SCRIPTS[script], tuple) else (SCRIPTS[script],)
    for name, line in zip(names, lines[-len(names):]):  # one ratio line per name, last, in order
        match = RATIO_LINE.match(line)
        assert match, f"{script} must end with 'ratio NAME=VALUE' lines, got {line!r}"
        assert match.group(1) == name
        assert float(match.group(2)) > 0
    assert any(line.startswith("# load average at start:") for line in lines)
    # the scripts borrow a cold cache and a thread count; both are given back
    assert os.environ.get("TLCOURSE_CACHE") == cache_before
    assert torch.get_num_threads() == threads_before


def test_heldout_probes_cross_validates_every_stage_and_neighbouring_pairs(tmp_path, monkeypatch, capsys, shared_data):
    """bench/heldout_probes.py on a small folder of real leaves (3 classes x 12 photos, 64 px)."""
    from leaf_folders import image_folder

    folder = image_folder(tmp_path / "leaves", 12)
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setattr(sys, "argv", ["heldout_probes.py", "--out", str(tmp_path / "out"), "--folder", str(folder),
                                      "--backbones", "mobilenet_v2:64"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(BENCH / "heldout_probes.py"), run_name="__main__")
    assert done.value.code == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| mobilenet_v2")]
    assert [r[1] for r in rows] == ["stage3", "stage4", "stage5", "top", "stage3 + stage4", "stage4 + stage5",
                                    "stage5 + top", "stage4 + stage5 + top", "stage3 + stage4 + stage5 + top"]
    accuracies = [float(r[2].rstrip("% |")) / 100 for r in rows]
    assert all(0 <= a <= 1 for a in accuracies) and max(accuracies) > 1 / 3  # better than chance on real leaves


def test_plant_recipe_reports_the_lessons_rule_one_view_and_flip_average(monkeypatch, capsys, shared_data):
    """bench/plant_recipe.py --quick with progressive resizing (64 px, then 80 px for the last epoch)."""
    monkeypatch.syspath_prepend(str(BENCH))
    threads_before = torch.get_num_threads()
    namespace = runpy.run_path(str(BENCH / "plant_recipe.py"))
    [row] = namespace["main"](["--quick", "--size2", "80"])
    assert row["n_test"] == 330  # the lesson's test split, whole, at the second size
    assert row["test"] == (row["flip_average"] if row["flip_chosen"] else row["one_view"])
    assert 0 < row["phase2_s"] < row["seconds"]
    out = capsys.readouterr().out
    assert "seed 0: test" in out and "one_view: mean" in out
    assert torch.get_num_threads() == threads_before
    with pytest.raises(SystemExit):
        namespace["main"](["--size2", "160", "--epochs", "6", "--epochs2", "6"])
    assert "--epochs2 must be between 1 and --epochs - 1" in capsys.readouterr().err
