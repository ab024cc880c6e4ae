"""The course runner (tlcourse/runner.py) and the results notebooks record (tlcourse/results.py).

The fixture course (tests/fixtures/notebooks/course) has two lessons and one exercise:
``00_boom`` records a value and then divides by zero, ``01_alpha`` records its parameters and a
figure, ``exercises/00_alpha`` has no kernelspec (papermill's inspect_notebook needs one, so
the runner's fallback reads it). The Ctrl-C / --resume test builds its own three-notebook
course. Eight kernels are started in this file, all on one-cell notebooks; everything else
fails (on purpose) before any kernel starts.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tlcourse.course import results
from tlcourse.cli import main
from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.course.runner import (
    TCP_WARNING,
    declared_parameters,
    default_kernel,
    find_root,
    load_profiles,
    parse_assignment,
    parse_value,
    prepare_run,
    run_course,
)

FIXTURE = Path(__file__).parent / "fixtures" / "notebooks" / "course"
SOURCES = sorted(FIXTURE.rglob("*.ipynb"))


@pytest.fixture(scope="session")
def python3_kernel() -> str:
    """The runner names its kernel; make sure one called python3 exists for this Python."""
    from jupyter_client.kernelspec import find_kernel_specs

    if "python3" not in find_kernel_specs():
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--user", "--name", "python3"],
            check=True, capture_output=True,
        )
    assert "python3" in find_kernel_specs()
    return "python3"


@pytest.fixture
def course(tmp_path, monkeypatch) -> Path:
    """A private copy of the fixture course (default output dirs land inside it)."""
    monkeypatch.delenv("TLCOURSE_ROOT", raising=False)
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    root = tmp_path / "course"
    shutil.copytree(FIXTURE, root)
    return root


def _source_bytes() -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in SOURCES}


# ------------------------------------------------------------------ runs that start kernels
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, python3_kernel):
    """``tlcourse run --profile smoke -p lr=0.5`` on the fixture course, run in place."""
    before = _source_bytes()
    out = tmp_path_factory.mktemp("run") / "out"
    saved_cwd = os.getcwd()
    saved_root = os.environ.pop("TLCOURSE_ROOT", None)
    os.chdir(FIXTURE)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            rc = main(["run", "--profile", "smoke", "-p", "lr=0.5", "--out", str(out)])
    finally:
        os.chdir(saved_cwd)
        if saved_root is not None:
            os.environ["TLCOURSE_ROOT"] = saved_root
    return rc, out, before, printed.getvalue()


def test_cli_run_exit_code_and_sources_untouched(cli_run, capsys):
    rc, out, before, _ = cli_run
    assert rc == 1  # 00_boom failed
    assert _source_bytes() == before
    assert sorted(FIXTURE.rglob("*.ipynb")) == SOURCES  # nothing written next to the sources
    assert not any(FIXTURE.rglob("*.results.json"))
    assert results.RESULTS_ENV not in os.environ and results.HEADLESS_ENV not in os.environ


def test_summary_records_failure_and_continues(cli_run):
    out = cli_run[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "smoke"
    assert summary["parameters"] == {"lr": 0.5}
    # no --kernel given: the course's own kernel when scripts/setup.sh registered it, else python3
    assert summary["timeout"] == 120 and summary["kernel"] == default_kernel()
    assert summary["started"] <= summary["finished"]
    boom, alpha = summary["notebooks"]
    assert [boom["name"], alpha["name"]] == ["00_boom.ipynb", "01_alpha.ipynb"]

    assert boom["status"] == "failed"
    assert boom["error"] == "ZeroDivisionError: division by zero"
    assert boom["parameters"] == {"seed": 3}  # only what it declares; no epochs/lr/name
    assert boom["results"]["values"] == {"before_error": 1, "seed": 3}  # recorded before 1/0
    partial = json.loads((out / boom["output"]).read_text())
    assert any(o.get("ename") == "ZeroDivisionError"
               for c in partial["cells"] for o in c.get("outputs", []))

    assert alpha["status"] == "ok" and alpha["error"] is None and alpha["seconds"] > 0
    # notebook default < profile defaults < profile notebooks: glob < -p
    assert alpha["parameters"] == {"epochs": 1, "name": "from-profile", "lr": 0.5}
    values = alpha["results"]["values"]
    # cwd is the run's own folder: files a notebook writes never land in the source tree
    assert values == {
        "epochs": 1, "lr": 0.5, "name": "from-profile", "n_per_class": 4,
        "headless": "1", "cwd": out.name, "score": 0.5, "curve": [0, 1, 2],
    }
    assert alpha["results"]["figures"] == {"curve": "01_alpha.curve.png"}
    assert (out / "01_alpha.curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    executed = json.loads((out / "01_alpha.ipynb").read_text())
    injected = [c for c in executed["cells"]
                if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "lr = 0.5" in "".join(injected[0]["source"])


def test_a_line_per_notebook_with_error_and_partial_output(cli_run):
    out, printed = cli_run[1], cli_run[3]
    assert re.search(r"^FAILED  00_boom\.ipynb +\d+\.\d s$", printed, re.M)
    assert re.search(r"^ok      01_alpha\.ipynb +\d+\.\d s$", printed, re.M)
    assert "\n        ZeroDivisionError: division by zero\n" in printed
    assert f"partially executed notebook: {out / '00_boom.ipynb'}" in printed
    assert "1 ok, 1 failed" in printed


def test_report_has_a_section_per_notebook(cli_run):
    out = cli_run[1]
    report = (out / "report.md").read_text()
    assert "Profile **smoke**" in report and "`lr=0.5`" in report
    assert "**1 ok, 1 failed**" in report
    boom = report.index("## 00_boom.ipynb")
    alpha = report.index("## 01_alpha.ipynb")
    assert boom < alpha
    assert "**FAILED**" in report[boom:alpha] and "ZeroDivisionError" in report[boom:alpha]
    assert "| before_error | 1 |" in report[boom:alpha]
    section = report[alpha:]
    assert "**ok** in" in section
    assert "| lr | 0.5 |" in section and "| name | from-profile |" in section
    assert "![curve](01_alpha.curve.png)" in section


def test_cli_prints_a_line_per_notebook(python3_kernel, course, monkeypatch, capsys):
    monkeypatch.chdir(course / "notebooks")  # the root is found upward from here
    rc = main(["run", "--only", "alpha", "-p", "epochs=3", "--timeout", "0"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert re.search(r"^ok {6}01_alpha\.ipynb +\d+\.\d s$", captured.out, re.M)
    assert "FAILED" not in captured.out and "no per-cell timeout" in captured.out
    runs = list((course / "runs").iterdir())  # default output: <root>/runs/<timestamp>/
    assert len(runs) == 1 and re.fullmatch(r"\d{8}-\d{6}", runs[0].name)
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["profile"] == "classroom" and summary["timeout"] is None
    (alpha,) = summary["notebooks"]
    assert alpha["results"]["values"]["epochs"] == 3
    assert alpha["results"]["values"]["name"] == "x"  # classroom: the notebook's own default


# ------------------------------------------------------------------ refused before running
def test_refuses_existing_non_empty_out(course):
    out = course / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    with pytest.raises(CourseError, match="already exists and is not empty.*another --out"):
        run_course(course, out=out, progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_unknown_parameter_lists_valid_ones(course, monkeypatch, capsys):
    monkeypatch.chdir(course)
    rc = main(["run", "-p", "epocs=3", "--out", str(course / "never")])
    err = capsys.readouterr().err
    assert rc != 0
    assert "'epocs'" in err and "Did you mean 'epochs'?" in err
    assert "Valid parameters: epochs, lr, n_per_class, name, seed." in err
    assert not (course / "never").exists()


def test_unknown_parameter_is_judged_on_selected_notebooks(course):
    with pytest.raises(InvalidParameterError, match="Valid parameters: seed"):
        prepare_run(course, only="boom", parameters=["lr=0.1"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("epochs=three", "'epochs' expects int (its default is 2), got 'three' (str) from -p epochs"),
        ("epochs=2.5", "'epochs' expects int"),
        ("lr=true", "'lr' expects float (an int is fine) (its default is 0.1), got True (bool)"),
        ("name=5", "'name' expects str"),
        ("epochs=0", "epochs=0 is not valid: epochs must be an integer >= 1"),
    ],
)
def test_wrong_type_or_range_refused(course, override, expected):
    with pytest.raises(InvalidParameterError) as info:
        prepare_run(course, parameters=[override])
    assert "01_alpha.ipynb" in str(info.value) and expected in str(info.value)


def test_accepted_values_and_what_each_notebook_gets(course):
    plan = prepare_run(course, profile="smoke", parameters=["lr=1", "n_per_class=None"],
                       exercises=True)
    got = {nb.label: nb.parameters for nb in plan.notebooks}
    assert list(got) == ["00_boom.ipynb", "01_alpha.ipynb", "exercises/00_alpha.ipynb"]
    assert got["01_alpha.ipynb"] == {"epochs": 1, "name": "from-profile", "lr": 1,
                                     "n_per_class": None}
    assert got["exercises/00_alpha.ipynb"] == {"epochs": 1}
    assert got["00_boom.ipynb"] == {"seed": 3}


def test_exercise_without_kernelspec_is_inspected(course):
    declared = declared_parameters(course / "exercises" / "00_alpha.ipynb")
    assert {n: d.type_label for n, d in declared.items()} == {"epochs": "int", "level": "str"}
    with pytest.raises(InvalidParameterError, match="exercises/00_alpha.ipynb: parameter 'level'"):
        prepare_run(course, exercises=True, only="exercises/", parameters=["level=3"])


def test_types_inferred_from_inspect_notebook(tmp_path):
    import nbformat

    cell = nbformat.v4.new_code_cell(
        'device = "auto"  # auto / cpu / cuda\nepochs = 2\nlr = 1e-3\nn_per_class = None\n'
        "augment = True\nsizes = [64, 128]\nsteps = 2 ** 3\nratio: float = 1\n"
        "limit: Optional[int] = 5\nnested: list[list[int]] = []\n"
    )
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "00_x.ipynb"
    nbformat.write(nb, path)
    declared = declared_parameters(path)
    assert {n: d.type_label for n, d in declared.items()} == {
        "device": "str", "epochs": "int", "lr": "float (an int is fine)",
        "n_per_class": "any value", "augment": "bool", "sizes": "list",
        "steps": "any value", "ratio": "float (an int is fine)", "limit": "int",
        "nested": "list",
    }
    assert declared["device"].help == "auto / cpu / cuda"
    assert declared["device"].default_source == '"auto"'
    assert not declared["augment"].accepts(1) and not declared["epochs"].accepts(True)
    assert declared["lr"].accepts(1) and declared["epochs"].accepts(None)


def test_profile_errors_fail_fast(course):
    bad = course / "bad.yaml"
    cases = {
        "smoke:\n  defaults:\n    epocs: 1\n": "Did you mean 'epochs'?",
        "smoke:\n  notebooks:\n    '07_*': {epochs: 1}\n": "'07_*' matches no notebook",
        "smoke:\n  notebooks:\n    '00_*': {lr: 1.0}\n": "sets 'lr', which none of 00_boom.ipynb",
        "smoke:\n  defaults:\n    epochs: one\n": "got 'one' (str) from profile 'smoke'",
        "smoke:\n  timeout: -5\n": "timeout -5",
        "smoke:\n  epochs: 1\n": "unknown key(s) 'epochs'",
    }
    for text, expected in cases.items():
        bad.write_text(text)
        with pytest.raises(CourseError) as info:
            prepare_run(course, profile="smoke", profiles_file=bad)
        assert expected in str(info.value), text
    # a common parameter no fixture notebook declares is fine in defaults (lessons may add it)
    bad.write_text("smoke:\n  defaults:\n    image_size: 64\n")
    assert prepare_run(course, profile="smoke", profiles_file=bad).notebooks


def test_unknown_profile_and_only_matching_nothing(course):
    with pytest.raises(CourseError, match="Valid profiles: classroom, smoke"):
        prepare_run(course, profile="ful")
    with pytest.raises(CourseError, match="Notebooks: 00_boom.ipynb, 01_alpha.ipynb"):
        prepare_run(course, only="zzz")
    assert [nb.label for nb in prepare_run(course, only="0[01]_a*").notebooks] == [
        "01_alpha.ipynb"]
    assert [nb.label for nb in prepare_run(course, only="boom,alpha").notebooks] == [
        "00_boom.ipynb", "01_alpha.ipynb"]


def test_find_root_walks_up_and_honours_env(course, monkeypatch):
    assert find_root(course / "exercises") == course.resolve()
    monkeypatch.setenv("TLCOURSE_ROOT", str(course))
    assert find_root("/") == course.resolve()
    monkeypatch.setenv("TLCOURSE_ROOT", str(course / "exercises"))
    with pytest.raises(CourseError, match="no notebooks/ directory"):
        find_root()


def test_course_profiles_file_is_valid():
    profiles = load_profiles(Path(__file__).parents[1] / "notebooks" / "profiles.yaml")
    assert {"smoke", "classroom", "full"} <= set(profiles)
    assert profiles["smoke"].defaults["image_size"] == 64 and profiles["smoke"].timeout
    assert profiles["classroom"].defaults == {} and profiles["full"].timeout is None
    from tlcourse.course.params import parameter_problems

    for profile in profiles.values():
        assert parameter_problems(profile.defaults) == [], profile.name


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("1e-4", 1e-4), ("0.5", 0.5), ("efficientnet_lite0", "efficientnet_lite0"),
     ("None", None), ("null", None), ("true", True), ("no", "no"), ("010", "010"),
     ("2024-01-01", "2024-01-01"), ("[64, 128]", [64, 128]), ("cuda:0", "cuda:0")],
)
def test_parse_value_reads_values_as_python_users_mean_them(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_parse_assignment_requires_key_value():
    assert parse_assignment("lr = 1e-4") == ("lr", 1e-4)
    for bad in ("epochs", "2x=1", "=3"):
        with pytest.raises(InvalidParameterError, match="KEY=VALUE"):
            parse_assignment(bad)


# ------------------------------------------------------------------ tlcourse.results in-process
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


# ------------------------------------------------------------------ Ctrl-C, --resume, --out
# A tiny course run by `python -m tlcourse run` in a subprocess of its own session, so that a
# SIGINT to its process group is what Ctrl-C in a terminal sends. 01_sleepy sleeps (only the
# first time it runs) until the test interrupts it; 00_quick counts its executions.
_QUICK = ("import pathlib\nfrom tlcourse.course.results import record\n"
          "counter = pathlib.Path('quick.count')\n"
          "counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))\n"
          "record(seed=seed)")
_SLEEPY = ("import pathlib, time\nfrom tlcourse.course.results import record\n"
           "flag = pathlib.Path('sleepy.started')\nfirst = not flag.exists()\n"
           "flag.write_text('1')\nrecord(nap=nap, first=first)\n"
           "if first:\n    time.sleep(nap)")
_LATER = "from tlcourse.course.results import record\nrecord(seed=seed)"
_PROFILES = "quick:\n  timeout: 120\n  defaults:\n    seed: 5\n"


def _tiny_course(root: Path) -> Path:
    import nbformat

    def notebook(name: str, params: str, body: str) -> None:
        cell = nbformat.v4.new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell(body)], metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, root / "notebooks" / name)

    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "profiles.yaml").write_text(_PROFILES)
    notebook("00_quick.ipynb", "seed = 0", _QUICK)
    notebook("01_sleepy.ipynb", "nap = 60  # seconds", _SLEEPY)
    notebook("02_later.ipynb", "seed = 0", _LATER)
    return root


def _tlcourse(*args: str, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TLCOURSE_ROOT", results.RESULTS_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                         env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "tlcourse", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _messages(stderr: str) -> list[str]:
    """stderr without tqdm's progress bar (redrawn with \\r on the same line)."""
    pieces = re.split(r"[\r\n]", stderr)
    return [p.strip() for p in pieces if p.strip() and not p.lstrip().startswith("notebooks:")]


def _kernels_in(folder: Path) -> list[int]:
    """Processes (kernels) whose working directory is ``folder``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if Path(os.readlink(proc / "cwd")) == folder:
                found.append(int(proc.name))
    return found


@pytest.mark.skipif(not hasattr(os, "killpg") or not Path("/proc/self/cwd").exists(),
                    reason="needs POSIX process groups and /proc")
def test_ctrl_c_writes_summary_and_report_then_resume_runs_only_the_rest(
        tmp_path, python3_kernel, monkeypatch, capsys):
    import signal
    import time

    course = _tiny_course(tmp_path / "course")
    out = course / "runs" / "first"
    run = _tlcourse("run", "--profile", "quick", "-p", "nap=30", "--kernel", python3_kernel,
                    "--out", str(out), cwd=course)
    deadline = time.monotonic() + 120
    while not (out / "sleepy.started").exists():
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "01_sleepy never started"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    stdout, stderr = run.communicate(timeout=60)

    assert run.returncode == 130, stderr
    resume = f"tlcourse run --resume {out}"
    assert _messages(stderr) == [
        f"tlcourse run: interrupted during 01_sleepy.ipynb; 1 of 3 notebook(s) finished, "
        f"summary and report in {out}. Resume with: {resume}"]
    assert "Traceback" not in stderr and TCP_WARNING not in stderr
    assert re.search(r"^ok {6}00_quick\.ipynb +\d+\.\d s$", stdout, re.M)
    assert _kernels_in(out) == []  # the interrupted notebook's kernel is gone
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "01_sleepy.ipynb"
    assert [(nb["name"], nb["status"]) for nb in summary["notebooks"]] == [
        ("00_quick.ipynb", "ok"), ("01_sleepy.ipynb", "interrupted")]
    assert summary["not_started"] == ["02_later.ipynb"]
    assert summary["plan"] == [
        {"name": "00_quick.ipynb", "parameters": {"seed": 5}},
        {"name": "01_sleepy.ipynb", "parameters": {"nap": 30}},
        {"name": "02_later.ipynb", "parameters": {"seed": 5}}]
    assert summary["notebooks"][1]["results"]["values"] == {"nap": 30, "first": True}
    report = (out / "report.md").read_text()
    assert "**1 ok, 0 failed, 1 interrupted, 1 not started**" in report
    assert "| 01_sleepy.ipynb | **interrupted** |" in report
    assert "| 02_later.ipynb | not started | |" in report and f"`{resume}`" in report
    quick_before = (out / "00_quick.ipynb").read_bytes()

    # The same --out is still refused for a new run, and says how to resume instead.
    monkeypatch.chdir(course)
    monkeypatch.delenv("TLCOURSE_ROOT", raising=False)
    assert main(["run", "--profile", "quick", "--out", str(out)]) == 2
    assert f"finish it with: {resume}." in capsys.readouterr().err

    # The profile changes after the interrupt: the resumed run keeps the recorded values.
    (course / "notebooks" / "profiles.yaml").write_text(_PROFILES.replace("5", "9"))
    again = _tlcourse("run", "--resume", str(out), cwd=tmp_path)
    stdout, stderr = again.communicate(timeout=180)
    assert again.returncode == 0, stderr
    assert "2 of 3 notebook(s) to run (1 ok kept)" in stdout
    assert "Traceback" not in stderr and _messages(stderr) == []  # no kernel TCP warnings
    summary = json.loads((out / "summary.json").read_text())
    assert [(nb["name"], nb["status"]) for nb in summary["notebooks"]] == [
        ("00_quick.ipynb", "ok"), ("01_sleepy.ipynb", "ok"), ("02_later.ipynb", "ok")]
    assert summary["interrupted"] is None and summary["not_started"] == []
    assert len(summary["resumed"]) == 1 and summary["finished"] >= summary["resumed"][0]
    sleepy, later = summary["notebooks"][1:]
    assert sleepy["results"]["values"] == {"nap": 30, "first": False}  # not merged with the old
    assert later["results"]["values"] == {"seed": 5} and later["parameters"] == {"seed": 5}
    assert (out / "00_quick.ipynb").read_bytes() == quick_before
    assert (out / "quick.count").read_text() == "1"  # the ok notebook did not run again
    report = (out / "report.md").read_text()
    assert "**3 ok, 0 failed**" in report and "not started" not in report
    assert "Resumed " in report and "interrupted" not in report
    assert _kernels_in(out) == []

    finished = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["run", "--resume", str(out)]) == 0
    assert "nothing to do, all 3 notebook(s)" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == finished


def test_kernel_tcp_warning_is_kept_off_the_terminal(python3_kernel, course, capfd):
    # The kernel writes it to its own stderr (file descriptor 2), so capture at fd level.
    summary = run_course(course, only="01", out=course / "out", kernel=python3_kernel,
                         progress=False)
    assert [nb.status for nb in summary.notebooks] == ["ok"]
    err = capfd.readouterr().err
    assert TCP_WARNING not in err and "without encryption" not in err


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: None, "no such folder"),
        (lambda tmp: (tmp / "x").write_text("not a run"), "this is a file, not a run folder"),
        (lambda tmp: (tmp / "x").mkdir(), "not a run folder (it has no summary.json)"),
        (lambda tmp: ((tmp / "x").mkdir(), (tmp / "x" / "summary.json").write_text("{oops")),
         "its summary.json cannot be read"),
        (lambda tmp: ((tmp / "x").mkdir(), (tmp / "x" / "summary.json").write_text(
            json.dumps({"profile": "smoke", "notebooks": []}))),
         "its summary.json lacks parameters, started, kernel, timeout, root, plan, exercises"),
    ],
    ids=["missing", "file", "empty-folder", "bad-json", "old-summary"],
)
def test_resume_refuses_what_is_not_a_run_folder(tmp_path, capsys, make, expected):
    make(tmp_path)
    target = tmp_path / "x"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rc = main(["run", "--resume", str(target)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"tlcourse run: --resume {target.resolve()}: {expected}")
    assert "takes the folder of an earlier `tlcourse run`" in err and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_resume_takes_no_other_options(tmp_path, capsys):
    rc = main(["run", "--resume", str(tmp_path), "--profile", "smoke", "-p", "epochs=1",
               "--timeout", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "it takes no --profile, -p, --timeout" in err


def _empty_sysfs_folder() -> Path | None:
    """An existing, empty folder that takes no files, even from root (sysfs), if there is one."""
    for candidate in ("/sys/kernel/debug", "/sys/kernel/tracing", "/sys/fs/fuse/connections",
                      "/sys/kernel/security", "/sys/kernel/software_nodes"):
        folder = Path(candidate)
        with contextlib.suppress(OSError):
            if folder.is_dir() and not any(folder.iterdir()):
                return folder
    return None


@pytest.mark.parametrize("where", ["under-a-file", "new-folder-in-sysfs", "empty-sysfs-folder"])
def test_out_that_cannot_be_written_is_refused_before_running(course, capsys, monkeypatch,
                                                             python3_kernel, where):
    # Tests run as root, for whom chmod takes nothing away: these paths refuse root too.
    denied = r"(permission denied \(.*\)|it is on a read-only file system|No such file.*)"
    if where == "under-a-file":
        blocker = course / "notes.txt"
        blocker.write_text("mine")
        out = blocker / "run"
        expected = f"Cannot create the output folder {re.escape(str(out))}: " + re.escape(
            f"{blocker} is a file, not a folder")
    elif where == "new-folder-in-sysfs":  # EPERM, or EROFS where /sys is mounted read-only
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no /sys on this system")
        out = Path("/sys/tlcourse-test-run")
        expected = f"Cannot create the output folder {re.escape(str(out))}: {denied}"
    else:
        out = _empty_sysfs_folder()
        if out is None:
            pytest.skip("no empty sysfs folder on this system")
        expected = f"Cannot write the run's results to {re.escape(str(out))}: {denied}"
    monkeypatch.chdir(course)
    before = {p: p.read_bytes() for p in course.rglob("*") if p.is_file()}
    existed = out.exists()
    rc = main(["run", "--profile", "smoke", "--only", "alpha", "--kernel", python3_kernel,
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert re.match(rf"tlcourse run: {expected}\. Pick a folder you can write to with --out DIR",
                    err), err
    assert out.exists() == existed and not (course / "runs").exists()
    if existed:
        assert list(out.iterdir()) == []
    assert {p: p.read_bytes() for p in course.rglob("*") if p.is_file()} == before


def test_out_that_is_a_file_is_refused(course):
    target = course / "result.txt"
    target.write_text("keep me")
    with pytest.raises(CourseError, match="is a file, not a folder"):
        run_course(course, out=target, progress=False)
    assert target.read_text() == "keep me"


def test_out_parents_made_for_a_refused_run_are_removed(course, monkeypatch):
    # Folders that can be made but not written into: no real path does that to root, so the
    # write check's OS error is simulated. The folders the runner made go again.
    import tempfile as tempfile_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile_module, "mkstemp", refuse)
    out = course / "new" / "deeper" / "run"
    with pytest.raises(CourseError, match=r"Cannot write the run's results to .*run: "
                                          r"permission denied"):
        run_course(course, out=out, progress=False)
    assert not (course / "new").exists()
