"""Sweeps on a real Dask LocalCluster (2 workers, 1 thread each), smoke profile: the faults
through --scheduler (as a lab cluster is used), the lesson through the default local cluster
(tlcourse/course/sweep/: submit, worker, store, preflight, report, resume).

A tiny course (one notebook, written here) covers the faults cheaply: seed 2 fails on
purpose, and the first attempt at seed 1 writes its worker's pid and sleeps until the test
kills that worker. Each run of a task appends to ``runs-<seed>`` so a test can count them.
One real lesson (the cheapest smoke run, lesson 00) is swept over a 2x2 grid.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import nbformat
import pytest

from runner_fixture import REPO
from tlcourse.course.runner import default_kernel
from tlcourse.course.sweep import load_sweep, resume_sweep, run_sweep
from tlcourse.course.sweep.cluster import machine_cores

pytestmark = pytest.mark.slow

_BODY = """\
import os, pathlib, time
from tlcourse.course.results import record
box = pathlib.Path(box)
with open(box / f"runs-{seed}", "a") as runs:
    runs.write("run\\n")
first = not (box / f"worker-{seed}").exists()
if seed == 1 and first:
    (box / f"worker-{seed}").write_text(str(os.getppid()))  # the kernel's parent: its worker
    time.sleep(300)
if seed == 2:
    raise ValueError("seed 2 fails on purpose")
record(score=seed / 10, retried=not first)
"""

_PROFILES = "smoke:\n  timeout: 400\n  defaults: {}\n"


def _tiny_course(root: Path) -> Path:
    params = nbformat.v4.new_code_cell('seed = 0\nbox = ""  # folder for the test\'s counters')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(_BODY)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "profiles.yaml").write_text(_PROFILES)
    nbformat.write(nb, root / "notebooks" / "00_faults.ipynb")
    return root


def _kill_the_sleeper(box: Path, killed: list[int]) -> None:
    """Wait for seed 1's first attempt, then SIGKILL the worker process running it."""
    flag = box / "worker-1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if flag.exists() and flag.read_text().strip():
            pid = int(flag.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.2)


def _runs(box: Path, seed: int) -> int:
    path = box / f"runs-{seed}"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture(scope="module")
def local_scheduler():
    """A LocalCluster of 2 worker processes, 1 thread each, that the sweep reaches through
    --scheduler (the way a lab's cluster is used)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def faulty_sweep(tmp_path_factory, python3_kernel, local_scheduler):
    """seed=0,1,2,3 over the tiny course; seed 1's worker is killed mid-task."""
    root = _tiny_course(tmp_path_factory.mktemp("faults") / "course")
    box = root / "box"
    box.mkdir()
    out = root.parent / "sweep"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_the_sleeper, args=(box, killed), daemon=True)
    killer.start()
    summary = run_sweep(root, only="00", profile="smoke", grid=["seed=0,1,2,3"],
                        parameters=[f"box={box}"], out=out, scheduler=local_scheduler,
                        kernel=python3_kernel, progress=False)
    killer.join(timeout=5)
    return summary, box, killed


def test_a_failing_combination_is_reported_and_the_others_finish(faulty_sweep):
    summary, _, _ = faulty_sweep
    status = {r.parameters["seed"]: r.status for r in summary.notebooks}
    assert status == {0: "ok", 1: "ok", 2: "failed", 3: "ok"}
    failed = summary.failed[0]
    assert failed.error == "ValueError: seed 2 fails on purpose"
    report = (summary.out / "report.md").read_text()
    assert "ValueError: seed 2 fails on purpose" in report
    assert "tlcourse sweep --resume" in report


def test_a_task_whose_worker_dies_is_retried_on_a_live_worker(faulty_sweep):
    summary, box, killed = faulty_sweep
    assert killed, "seed 1 never started, so no worker was killed"
    seed1 = next(r for r in summary.notebooks if r.parameters["seed"] == 1)
    assert seed1.status == "ok"
    assert seed1.results["values"] == {"score": 0.1, "retried": True}
    assert _runs(box, 1) == 2  # the killed attempt, then the retry


def test_each_task_has_its_own_complete_folder(faulty_sweep, local_scheduler):
    summary, _, _ = faulty_sweep
    assert summary.cluster == f"Dask scheduler {local_scheduler}"
    tasks = summary.out / "tasks"
    assert sorted(p.name for p in tasks.iterdir()) == sorted(t.folder for t in summary.tasks)
    for result in summary.notebooks:
        assert (summary.out / result.output).is_file()
    ok = [r for r in summary.notebooks if r.status == "ok"]
    assert all((summary.out / r.results_file).is_file() for r in ok)
    data = json.loads((summary.out / "summary.json").read_text())
    threads = max(1, machine_cores() // 2)  # two workers share this machine's cores
    assert [p["torch_threads"] for p in data["placements"].values()] == [threads] * 4
    assert set(data["placements"]) == {r.name for r in summary.notebooks}


def test_resume_reruns_only_what_did_not_finish(faulty_sweep, local_scheduler):
    summary, box, _ = faulty_sweep
    before = {seed: _runs(box, seed) for seed in range(4)}
    ok_folders = {r.name: (summary.out / r.output).stat().st_mtime_ns
                  for r in summary.notebooks if r.status == "ok"}
    resumed = resume_sweep(summary.out, scheduler=local_scheduler, progress=False)
    after = {seed: _runs(box, seed) for seed in range(4)}
    assert after == {**before, 2: before[2] + 1}  # only the failed seed ran again
    assert [r.status for r in resumed.notebooks].count("failed") == 1
    assert {r.name: (summary.out / r.output).stat().st_mtime_ns
            for r in resumed.notebooks if r.status == "ok"} == ok_folders
    assert len(load_sweep(summary.out).resumed) == 1


@pytest.fixture(scope="module")
def lesson_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("lesson") / "sweep"
    start = time.perf_counter()
    summary = run_sweep(REPO, only="00", profile="smoke",
                        grid=["seed=0,1", "image_size=48,64"], out=out, workers=2,
                        kernel=default_kernel(), progress=False)
    return summary, time.perf_counter() - start


def test_a_2x2_grid_of_a_lesson_gives_4_results_and_the_table(lesson_sweep):
    summary, seconds = lesson_sweep
    print(f"2x2 sweep of lesson 00 (smoke) on 2 workers: {seconds:.1f} s")
    assert [r.status for r in summary.notebooks] == ["ok"] * 4, [r.error for r in summary.notebooks]
    assert {(r.parameters["seed"], r.parameters["image_size"]) for r in summary.notebooks} == {
        (0, 48), (0, 64), (1, 48), (1, 64)}
    report = (summary.out / "report.md").read_text()
    for size in (48, 64):
        row = next(line for line in report.splitlines()
                   if f"| image_size={size} | test_acc_pretrained | 2 |" in line)
        values = [r.results["values"]["test_acc_pretrained"] for r in summary.notebooks
                  if r.parameters["image_size"] == size]
        assert f"| {sum(values) / 2:.4g} |" in row
    assert (summary.out / "sweep.00_golden_rule.png").stat().st_size > 1000
    assert "![00_golden_rule.ipynb across the grid](sweep.00_golden_rule.png)" in report


def test_resume_of_a_finished_sweep_runs_nothing(lesson_sweep, capsys, monkeypatch):
    import tlcourse.course.sweep as sweep

    summary, _ = lesson_sweep
    monkeypatch.setattr(sweep, "start_local", lambda *a: pytest.fail("a cluster was started"))
    resume_sweep(summary.out, progress=False)
    assert "nothing to do, all 4 task(s)" in capsys.readouterr().out
