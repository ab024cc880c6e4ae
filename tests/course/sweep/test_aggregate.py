"""Results across seeds (tlcourse/course/sweep/aggregate.py) and the sweep report's table and
plot (report.py), on a summary built by hand: no cluster, no kernel."""
from __future__ import annotations

import math

import pytest

from tlcourse.course.runner.summary import NotebookResult
from tlcourse.course.sweep.aggregate import across_seeds
from tlcourse.course.sweep.report import write_sweep_report
from tlcourse.course.sweep.summary import SweepSummary, load_sweep
from tlcourse.course.sweep.tasks import SweepTask

_ACC = {(0, 128): 0.80, (1, 128): 0.90, (2, 128): 0.85, (0, 160): 0.95, (1, 160): 0.93}


def _summary(out) -> SweepSummary:
    tasks, results = [], []
    for i, (seed, size) in enumerate([(s, z) for z in (128, 160) for s in (0, 1, 2)]):
        grid = {"seed": seed, "image_size": size}
        task = SweepTask(f"07.ipynb [seed={seed}, image_size={size}]", f"07-t{i:03d}", "07.ipynb",
                         grid, {**grid, "epochs": 1})
        tasks.append(task)
        failed = (seed, size) not in _ACC
        values = {} if failed else {"val_accuracy": _ACC[seed, size], "seed": seed,
                                    "label": "text", "flag": True}
        results.append(NotebookResult(task.name, "failed" if failed else "ok", 1.5 + i,
                                      f"tasks/{task.folder}/07.ipynb", {"values": values},
                                      "ValueError: boom" if failed else None, task.parameters,
                                      f"tasks/{task.folder}/07.results.json"))
    summary = SweepSummary(profile="smoke", parameters={"epochs": 1}, started="2026-12-01",
                           out=out, kernel="python3", timeout=60, root=out,
                           plan=[(t.name, t.parameters) for t in tasks],
                           grid={"seed": [0, 1, 2], "image_size": [128, 160]}, tasks=tasks,
                           cluster="LocalCluster, 2 worker(s)")
    for task, result in zip(tasks, results):
        summary.record(result)
        summary.placements[task.name] = {"worker": "tcp://127.0.0.1:1", "torch_threads": 1}
    return summary


def test_mean_and_spread_across_seeds_per_combination(tmp_path):
    table = across_seeds(_summary(tmp_path))
    assert list(table["combination"]) == ["image_size=128", "image_size=160"]
    assert set(table["result"]) == {"val_accuracy"}  # the echoed seed, text and booleans are not results
    first, second = table.iloc[0], table.iloc[1]
    assert first["runs"] == 3 and first["mean"] == pytest.approx(0.85)
    assert first["std"] == pytest.approx(0.05) and (first["min"], first["max"]) == (0.8, 0.9)
    assert second["runs"] == 2 and second["mean"] == pytest.approx(0.94)  # seed 2 failed


def test_report_has_the_table_the_plot_and_each_tasks_time_and_worker(tmp_path):
    summary = _summary(tmp_path)
    summary.save()
    report = write_sweep_report(load_sweep(tmp_path)).read_text()
    assert "| 07.ipynb | image_size=128 | val_accuracy | 3 | 0.85 | 0.05 | 0.8 | 0.9 |" in report
    assert "| 07.ipynb [seed=2, image_size=160] | failed | 6.5 | tcp://127.0.0.1:1 | 1 | ValueError: boom |" in report
    assert "tlcourse sweep --resume" in report
    assert (tmp_path / "sweep.07.png").stat().st_size > 1000
    assert not math.isnan(across_seeds(load_sweep(tmp_path))["mean"].iloc[0])


@pytest.mark.parametrize("folder", ["../../outside", "a/b", ".hidden", ""])
def test_a_summary_whose_task_folder_leaves_the_sweep_is_refused_on_resume(tmp_path, folder):
    import json

    from tlcourse.errors import CourseError

    _summary(tmp_path).save()
    data = json.loads((tmp_path / "summary.json").read_text())
    data["tasks"][0]["folder"] = folder
    (tmp_path / "summary.json").write_text(json.dumps(data))
    with pytest.raises(CourseError, match="summary.json is damaged .*not a plain folder name"):
        load_sweep(tmp_path)


def test_run_and_sweep_folders_are_each_resumed_by_their_own_command(tmp_path):
    from tlcourse.course.runner.summary import RunSummary, load_summary
    from tlcourse.errors import CourseError

    sweep, run = tmp_path / "sweep", tmp_path / "run"
    sweep.mkdir(), run.mkdir()
    _summary(sweep).save()
    RunSummary(profile="smoke", parameters={}, started="x", out=run, kernel="python3",
               timeout=None, root=run).save()
    with pytest.raises(CourseError, match=r"folder of a `tlcourse sweep`; finish it with `tlcourse sweep --resume"):
        load_summary(sweep)
    with pytest.raises(CourseError, match=r"folder of a `tlcourse run`; finish it with `tlcourse run --resume"):
        load_sweep(run)
    import json

    data = json.loads((sweep / "summary.json").read_text())
    (sweep / "summary.json").write_text(json.dumps({**data, "kind": "; rm -rf ~"}))
    with pytest.raises(CourseError, match="of kind '; rm -rf ~', which tlcourse does not write"):
        load_sweep(sweep)
