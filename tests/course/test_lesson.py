"""start_lesson, the first cell after every lesson's parameters (tlcourse/course/lesson.py):
bad values stop it before anything is seeded or recorded; a good start records the run."""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
import torch

from tlcourse.course import results
from tlcourse.course.lesson import start_lesson
from tlcourse.errors import InvalidParameterError


def test_bad_parameters_in_a_notebook_stop_the_first_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """start_lesson (the notebooks' first cell) refuses before seeding or recording a run."""
    from tlcourse.course.lesson import start_lesson

    record = tmp_path / "00.results.json"
    monkeypatch.setenv(results.RESULTS_ENV, str(record))
    with pytest.raises(InvalidParameterError) as info:
        start_lesson(backbone="mobilenet_v2", image_size=0, epochs=-2, n_per_class=8, seed=0, device="cpu")
    message = str(info.value)
    assert "image_size=0" in message and "epochs=-2" in message
    assert "parameters cell" in message and "tlcourse run -p image_size=... -p epochs=..." in message
    assert not record.exists()


def test_each_run_records_versions_device_seed_and_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy
    import torchvision

    import tlcourse
    from tlcourse.course.lesson import start_lesson

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(results, "_memory", {"values": {}, "figures": {}, "run": {}})
    path = tmp_path / "00_golden_rule.results.json"
    monkeypatch.setenv(results.RESULTS_ENV, str(path))
    results.record(test_acc=0.5)  # a result recorded earlier in the notebook stays
    params = dict(backbone="mobilenet_v2", image_size=64, epochs=1, n_per_class=8, seed=3, device="auto", lr=1e-3)
    with contextlib.redirect_stdout(io.StringIO()):
        lesson = start_lesson(**params)
    assert lesson.device == torch.device("cpu") and lesson.seed == 3
    saved = json.loads(path.read_text())
    run = saved["run"]
    assert run["parameters"] == params and run["seed"] == 3
    env = run["environment"]
    assert env["device"] == "cpu"  # where it actually ran, not "auto"
    assert env["torch"] == torch.__version__ and env["torchvision"] == torchvision.__version__
    assert env["numpy"] == numpy.__version__ and env["tlcourse"] == tlcourse.__version__
    assert env["python"] == sys.version.split()[0] and env["cpu_threads"] == torch.get_num_threads()
    assert saved["values"] == {"test_acc": 0.5}
