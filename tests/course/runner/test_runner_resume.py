"""Ctrl-C and ``tlcourse run --resume`` (tlcourse/course/runner/resume.py, execute.py).

A tiny course run by `python -m tlcourse run` in a subprocess of its own session, so that a
SIGINT to its process group is what Ctrl-C in a terminal sends. 01_sleepy sleeps (only the
first time it runs) until the test interrupts it; 00_quick counts its executions.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner_fixture import REPO
from tlcourse.course.cli import main
from tlcourse.course import results
from tlcourse.course.runner import TCP_WARNING


_QUICK = ("import pathlib\nfrom tlcourse.course.results import record\n"
          "counter = pathlib.Path('quick.count')\n"
          "counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))\n"
          "record(seed=seed)")


# The flag is written after record(), so the test never interrupts before the values are saved.
_SLEEPY = ("import pathlib, time\nfrom tlcourse.course.results import record\n"
           "flag = pathlib.Path('sleepy.started')\nfirst = not flag.exists()\n"
           "record(nap=nap, first=first)\nflag.write_text('1')\n"
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
    env["PYTHONPATH"] = os.pathsep.join([str(REPO),
                                         env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "tlcourse", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal() -> None:
    """A command typed in a terminal starts with Ctrl-C's default action. When pytest itself runs
    as a background job (`nohup ... &`), its children inherit Ctrl-C *ignored*, and the runner
    rightly keeps it ignored: the Ctrl-C test would then see a run that finishes instead."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
