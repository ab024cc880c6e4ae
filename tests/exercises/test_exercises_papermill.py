"""Headless under real papermill: a notebook with an ``answers`` parameter records progress.

Also runs the widget path inside the same kernel: widgets must display and check the given
answers without waiting for anyone.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

papermill = pytest.importorskip("papermill")


def _notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell('answers = {}\nlearner = "nobody"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from tlcourse.exercises import Exercises\n"
            "from tlcourse.exercises.notebook import in_kernel\n"
            "print('in_kernel', in_kernel())\n"
            "ex = Exercises.load('example', learner=learner, answers=answers)\n"
            "print('headless', ex.headless)\n"
            "ex.ask('q1')\n"
            "ex.ask('q3')\n"
            "ex.ask('q4')"
        ),
        nbformat.v4.new_code_cell(
            "wx = Exercises.load('example', learner=learner, answers=answers, headless=False)\n"
            "wx.ask('q5')\n"
            "print('widget feedback:', wx.widget('q5').feedback.value)"
        ),
    ]
    nbformat.write(nb, path)


def test_papermill_headless_run_records_answers(tmp_path, monkeypatch, python3_kernel, progress_file):
    progress = progress_file  # exercise_env points TLCOURSE_PROGRESS and TLCOURSE_BANKS for the kernel too
    monkeypatch.setenv("TLCOURSE_HEADLESS", "1")
    src, out = tmp_path / "tiny.ipynb", tmp_path / "tiny.out.ipynb"
    _notebook(src)
    papermill.execute_notebook(
        str(src),
        str(out),
        parameters={"answers": {"q1": "b", "q3": 3000, "q5": "batch norm"}, "learner": "pm"},
        kernel_name=python3_kernel,
        cwd=str(tmp_path),
        progress_bar=False,
        execution_timeout=120,
    )
    from tlcourse.exercises import read_entries

    entries = read_entries(progress)
    assert [(e["learner"], e["question"], e["correct"]) for e in entries] == [
        ("pm", "q1", True),
        ("pm", "q3", False),
        ("pm", "q5", True),
    ]
    executed = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "in_kernel True" in text and "headless True" in text
    assert "\u2713 Correct." in text and "3000 is too low" in text and "no answer yet: add 'q4'" in text
    assert "widget feedback:" in text and "\u2713" in text.split("widget feedback:")[1]
