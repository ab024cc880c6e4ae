"""What a notebook records for the runner (tlcourse/course/results.py), in-process."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tlcourse.course import results
from tlcourse.errors import CourseError


@pytest.fixture
def fresh_results(monkeypatch):
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    results.reset()
    yield
    results.reset()


def test_record_converts_and_merges_atomically(tmp_path, monkeypatch, fresh_results):
    import torch

    path = tmp_path / "03_x.results.json"
    monkeypatch.setenv(results.RESULTS_ENV, str(path))
    got = results.record(acc=np.float32(0.25), n=np.int64(7), t=torch.tensor(1.5),
                         v=torch.arange(3), ok=np.bool_(True), loss=float("nan"),
                         where=Path("a/b"), dev=torch.device("cpu"), pair=(1, 2))
    assert got == {"acc": 0.25, "n": 7, "t": 1.5, "v": [0, 1, 2], "ok": True, "loss": "nan",
                   "where": "a/b", "dev": "cpu", "pair": [1, 2]}
    results.record(acc=0.5, extra={"k": np.arange(2)})
    on_disk = json.loads(path.read_text())
    assert on_disk["values"]["acc"] == 0.5 and on_disk["values"]["n"] == 7
    assert on_disk["values"]["extra"] == {"k": [0, 1]}
    assert results.recorded()["values"] == on_disk["values"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left behind
    with pytest.raises(CourseError, match="Cannot record model of type Linear"):
        results.record(model=torch.nn.Linear(1, 1))


def test_outside_the_runner_results_stay_in_memory(tmp_path, monkeypatch, fresh_results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    assert results.record(acc=1.0) == {"acc": 1.0}
    fig = plt.figure()
    assert results.record_figure(fig, "curve") is None
    plt.close(fig)
    assert results.recorded() == {"values": {"acc": 1.0}, "figures": {}, "run": {}}
    assert list(tmp_path.iterdir()) == []
    assert not results.headless()


def test_record_figure_and_run_under_the_runner(tmp_path, monkeypatch, fresh_results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "05_y.results.json"))
    monkeypatch.setenv(results.HEADLESS_ENV, "1")
    fig = plt.figure(figsize=(1, 1))
    saved = results.record_figure(fig, "confusion matrix")
    plt.close(fig)
    assert saved == tmp_path / "05_y.confusion_matrix.png" and saved.stat().st_size > 0
    run = results.record_run({"epochs": 2, "lr": np.float64(0.1)}, seed=0, device="cpu")
    assert run["parameters"] == {"epochs": 2, "lr": 0.1} and run["seed"] == 0
    assert run["environment"]["device"] == "cpu" and "torch" in run["environment"]
    data = results.read_results(tmp_path / "05_y.results.json")
    assert data["figures"] == {"confusion matrix": "05_y.confusion_matrix.png"}
    assert data["run"]["environment"]["torch"] == run["environment"]["torch"]
    assert results.headless()
