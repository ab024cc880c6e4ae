"""What the site keeps of a notebook from someone else (see tlcourse/course/site/sanitise.py)."""
from __future__ import annotations

import base64

import nbformat
import pytest

from site_fixture import ALERT, tiny_run
from tlcourse.course.site.sanitise import (
    escape_markdown,
    literal_markdown,
    markdown_problem,
    read_notebook,
    safe_notebook,
)
from tlcourse.errors import CourseError

v4 = nbformat.v4


@pytest.mark.parametrize("text", [
    "# Title\n\nSome *text*, `code`, **bold**, a [link](https://pytorch.org) and a [jump](#title).",
    "| a | b |\n| --- | --- |\n| 1 | 2 |\n\n- one\n- two\n\n1. first\n\n> quote\n\n---",
    "```python\nmodel.train()\n```\n\n    indented code",
])
def test_plain_markdown_passes(text):
    assert markdown_problem(text) is None


@pytest.mark.parametrize("text, why", [
    (f"Hi {ALERT}", "raw HTML"),
    ("<div onclick='x()'>hi</div>", "raw HTML"),
    ("```{literalinclude} /etc/passwd\n```", "directive"),
    ("```{raw} html\n<script>x</script>\n```", "directive"),
    ("```{eval-rst}\n.. include:: /etc/passwd\n```", "directive"),
    ("Read {download}`this </etc/passwd>`.", "MyST role"),
    ("[secret](../../../etc/passwd)", "not an http"),
    ("![photo](/home/me/.ssh/id_rsa)", "image"),
    ("(target)=\n# Title", "myst_target"),
])
def test_markup_that_runs_or_reads_files_is_found(text, why):
    assert why in markdown_problem(text)


def test_a_javascript_link_stays_text():
    from tlcourse.course.site.sanitise import _markdown_parser

    text = "[run](javascript:alert(1))"
    assert markdown_problem(text) is None  # markdown-it refuses the URL: no link is made
    assert "href" not in _markdown_parser().render(text)


def test_literal_markdown_cannot_be_closed_from_inside():
    text = "`````\n```{include} x\n```"
    block = literal_markdown(text, "a directive")
    assert block.splitlines()[2] == "``````text" and block.endswith("\n``````")
    assert markdown_problem(block) is None


def test_escape_markdown_leaves_no_syntax():
    assert markdown_problem(escape_markdown("{download}`x </etc/passwd>` <b>[a](b)</b> | $x$")) is None


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_a_hostile_notebook_keeps_only_what_is_safe(tmp_path):
    run = tiny_run(tmp_path / "run", hostile=True)
    original = read_notebook(run / "00_tiny.ipynb")
    safe = safe_notebook(original, ["**the run line**"])
    assert safe.cells[0].source == "**the run line**"
    assert set(safe.metadata) == {"language_info"}  # no mystnb execution_mode, no widget state
    assert all(not c.metadata for c in safe.cells)
    markdown = [c.source for c in safe.cells if c.cell_type == "markdown"]
    assert sum("The site shows this cell as its source" in m for m in markdown) == 3
    assert all(markdown_problem(m) is None for m in markdown)
    kinds = [sorted(o.get("data", {})) for o in _outputs(safe)]
    assert ["application/javascript"] not in kinds and not any("text/markdown" in k for k in kinds)
    html = [o.data["text/html"] for o in _outputs(safe) if "text/html" in o.get("data", {})]
    assert "<table" in html[0]  # pandas' table survives bleach
    assert "<b>bold</b>" in html[1] and "<script" not in html[1] and "&lt;script&gt;" in html[1]
    assert "onerror" not in html[1].replace("&lt;", "<").split("<img")[0]
    assert "<img" not in html[1]
    nbformat.validate(safe)


def test_the_widget_becomes_text_and_the_figure_stays_a_png(tmp_path):
    safe = safe_notebook(read_notebook(tiny_run(tmp_path / "run") / "00_tiny.ipynb"))
    texts = [o.data.get("text/plain", "") for o in _outputs(safe) if "data" in o]
    assert any(t.startswith("(a) from scratch: 100% |") for t in texts)
    assert not any("HBox(" in t for t in texts)
    png = next(o.data["image/png"] for o in _outputs(safe) if "image/png" in o.get("data", {}))
    assert base64.b64decode(png).startswith(b"\x89PNG")


def test_an_image_that_is_not_what_it_claims_is_dropped():
    nb = v4.new_notebook(cells=[v4.new_code_cell("x", outputs=[v4.new_output(
        "display_data", data={"image/png": base64.b64encode(b"<svg onload=alert(1)>").decode()})])])
    assert safe_notebook(nb).cells[0].outputs == []


def test_an_unreadable_notebook_is_a_course_error(tmp_path):
    bad = tmp_path / "00_bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(CourseError, match="00_bad.ipynb is not a readable notebook"):
        read_notebook(bad)
