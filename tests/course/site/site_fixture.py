"""A small run folder written by hand, laid out as ``tlcourse run`` writes one: a lesson with a
real matplotlib figure, a pandas table and a finished tqdm bar (a widget with its saved state),
an exercise whose question the run printed as text, their results files and ``summary.json``.

``hostile=True`` adds what a run folder from someone else could carry: a ``<script>`` in an
HTML output and in a markdown cell, a JavaScript output, directives that read a file of the
building machine, a local link, and notebook metadata asking MyST-NB to execute the notebook.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import nbformat

SECRET = "tlcourse-site-secret-7f3a"  # the content of the file a hostile cell tries to include
ALERT = "<script>alert('from the run folder')</script>"
_WIDGET = "application/vnd.jupyter.widget-view+json"


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [0.2, 0.5, 0.9], marker="o")
    ax.set_title("val accuracy")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _tqdm_state() -> dict:
    """The widget state tqdm.auto leaves for a finished bar: HBox(HTML, FloatProgress, HTML)."""
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls",
                "model_module_version": "2.0.0", "state": {"_model_name": name, **state}}

    return {"state": {
        "box": model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]),
        "left": model("HTMLModel", value="(a) from scratch: 100%"),
        "bar": model("FloatProgressModel", value=3.0, max=3.0, min=0.0),
        "right": model("HTMLModel", value=" 3/3 [00:02&lt;00:00, val_acc=0.91]"),
    }, "version_major": 2, "version_minor": 0}


def _lesson(hostile: bool) -> nbformat.NotebookNode:
    import pandas as pd

    v4 = nbformat.v4
    table = pd.DataFrame({"stage": ["head", "all"], "accuracy": [0.81, 0.93]})
    cells = [
        v4.new_markdown_cell("# Lesson 00 — A tiny lesson\n\nThe *pretrained* network wins; "
                             "see [torchvision](https://pytorch.org/vision/)."),
        v4.new_code_cell("print('training')", outputs=[
            v4.new_output("stream", name="stdout", text="training\nval_acc 0.91\n")]),
        v4.new_code_cell("for _ in tqdm(range(3)): ...", outputs=[v4.new_output(
            "display_data", data={_WIDGET: {"version_major": 2, "version_minor": 0, "model_id": "box"},
                                  "text/plain": "HBox(children=(HTML(value=''), FloatProgress(value=0.0)))"})]),
        v4.new_code_cell("plot_history(history)", outputs=[v4.new_output(
            "display_data", data={"image/png": _png(), "text/plain": "<Figure size 300x200 with 1 Axes>"})]),
        v4.new_code_cell("table", outputs=[v4.new_output(
            "execute_result", data={"text/html": table.to_html(), "text/plain": str(table)},
            execution_count=4)]),
    ]
    if hostile:
        cells += [
            v4.new_markdown_cell(f"## Hostile\n\nA script in markdown: {ALERT}"),
            v4.new_markdown_cell("```{literalinclude} secret.txt\n```\n"),
            v4.new_markdown_cell(":::{include} secret.txt\n:::\n\n{{ secret }} $x$"),
            v4.new_markdown_cell("Read {download}`the secret <secret.txt>` or [this](secret.txt)."),
            v4.new_code_cell("show()", outputs=[
                v4.new_output("display_data", data={
                    "text/html": f"<b>bold</b>{ALERT}<img src=x onerror=\"alert(2)\">",
                    "text/plain": "<IPython.core.display.HTML object>"}),
                v4.new_output("display_data", data={"application/javascript": "alert(3)"}),
                v4.new_output("display_data", data={"text/markdown": "```{include} secret.txt\n```"}),
            ]),
        ]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": _tqdm_state()}
    if hostile:
        nb.metadata["mystnb"] = {"execution_mode": "force"}
    return nb


def _exercise() -> nbformat.NotebookNode:
    v4 = nbformat.v4
    question = ("[q1] Which layers does a frozen backbone train? (choose one)\n"
                "  a) all of them\n  b) only the new head\n"
                "  (no answer yet: add 'q1': ... to the answers dict)\n")
    return v4.new_notebook(cells=[
        v4.new_markdown_cell("# Exercises 01 — Tiny\n\nAnswer with the widgets."),
        v4.new_code_cell('ex.ask("q1")', outputs=[v4.new_output("stream", name="stdout", text=question)]),
    ])


def _entry(name: str, seconds: float, values: dict) -> dict:
    stem = Path(name).stem
    folder = "exercises/" if name.startswith("exercises/") else ""
    return {"name": name, "status": "ok", "seconds": seconds, "output": name,
            "results": {"values": values, "figures": {}, "run": {"parameters": {"epochs": 2}, "seed": 0,
                        "environment": {"device": "cpu", "torch": "2.14.1", "python": "3.11.7",
                                        "tlcourse": "0.1.0"}}},
            "error": None, "parameters": {"epochs": 2},
            "results_file": f"{folder}{stem}.results.json"}


def tiny_run(folder: Path, hostile: bool = False) -> Path:
    """Write the run folder into ``folder`` (created) and return it."""
    (folder / "exercises").mkdir(parents=True)
    nbformat.write(_lesson(hostile), folder / "00_tiny.ipynb")
    nbformat.write(_exercise(), folder / "exercises" / "01_tiny.ipynb")
    (folder / "secret.txt").write_text(SECRET)
    summary = {
        "profile": "smoke", "description": "tiny inputs", "parameters": {"epochs": 2},
        "started": "2026-12-01T09:00:00+00:00", "finished": "2026-12-01T09:01:00+00:00",
        "resumed": [], "interrupted": None, "out": str(folder), "kernel": "python3", "timeout": 600,
        "root": "/elsewhere/course", "exercises": True,
        "plan": [{"name": "00_tiny.ipynb", "parameters": {"epochs": 2}},
                 {"name": "exercises/01_tiny.ipynb", "parameters": {}}],
        "notebooks": [_entry("00_tiny.ipynb", 12.5, {"val_accuracy": 0.912345, "epochs_run": 2}),
                      _entry("exercises/01_tiny.ipynb", 3.0, {})],
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return folder
