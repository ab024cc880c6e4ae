"""The pages the site writes itself: the landing page, the run line, each notebook's note."""
from __future__ import annotations

import json

from site_fixture import tiny_run
from tlcourse.course.site import read_run
from tlcourse.course.site.pages import config_yaml, landing_page, notebook_note, run_line, toc_yaml
from tlcourse.course.site.sanitise import _SAFE_TOKENS, _markdown_parser, _walk

TITLES = {"00_tiny.ipynb": "Lesson 00 — A tiny lesson", "exercises/01_tiny.ipynb": "Exercises 01 — Tiny"}


def test_the_landing_page_has_the_run_the_lessons_the_exercises_and_the_results(tmp_path):
    run = read_run(tiny_run(tmp_path / "run"))
    page = landing_page(run, TITLES)
    for expected in ("## The run", "smoke \\(tiny inputs\\)", "epochs\\=2", "2\\.14\\.1",
                     "## Lessons", "(notebooks/00_tiny.html)", "## Exercises",
                     "(exercises/01_tiny.html)", "## Key results", "0\\.9123", "12.5"):
        assert expected in page, expected


def test_every_notebook_page_says_which_run_and_links_its_notebook(tmp_path):
    run = read_run(tiny_run(tmp_path / "run"))
    lesson, exercise = run.notebooks
    note = notebook_note(run, lesson)
    assert "2026\\-12\\-01T09\\:00\\:00\\+00\\:00" in note and "profile smoke" in note
    assert '<a href="00_tiny.ipynb" download>Download the executed notebook</a>' in note
    assert "JupyterLab" in notebook_note(run, exercise) and "widgets" in notebook_note(run, exercise)
    config = config_yaml(run)
    assert config["html"]["announcement"] == run_line(run).replace("'", "&#x27;")
    assert config["execute"]["execute_notebooks"] == "off"
    assert toc_yaml(run)["parts"][1]["chapters"] == [{"file": "exercises/01_tiny"}]


def test_a_failed_notebook_says_so_on_its_page(tmp_path):
    folder = tiny_run(tmp_path / "run")
    data = json.loads((folder / "summary.json").read_text())
    data["notebooks"][0].update(status="failed", error="ZeroDivisionError: division by zero")
    (folder / "summary.json").write_text(json.dumps(data))
    run = read_run(folder)
    assert "did not finish in this run" in notebook_note(run, run.notebooks[0])
    assert "FAILED" in landing_page(run, TITLES)


def test_markup_in_the_summary_stays_text(tmp_path):
    folder = tiny_run(tmp_path / "run")
    data = json.loads((folder / "summary.json").read_text())
    data["profile"] = "<script>alert(1)</script>{download}`x </etc/passwd>`"
    data["parameters"] = {"[x](../../secret)": "```{include} /etc/passwd"}
    (folder / "summary.json").write_text(json.dumps(data))
    run = read_run(folder)
    tokens = list(_walk(_markdown_parser().parse(landing_page(run, TITLES))))
    assert {t.type for t in tokens} <= _SAFE_TOKENS
    links = {t.attrGet("href") for t in tokens if t.type == "link_open"}
    assert links <= {"notebooks/00_tiny.html", "exercises/01_tiny.html"}
    data["notebooks"][0]["parameters"] = {"<script>x</script>": "[x](../../secret)"}
    (folder / "summary.json").write_text(json.dumps(data))
    run = read_run(folder)
    tokens = list(_walk(_markdown_parser().parse(notebook_note(run, run.notebooks[0]))))
    assert {t.type for t in tokens} <= _SAFE_TOKENS | {"html_block"}  # the site's own paragraph
    [paragraph] = [t.content for t in tokens if t.type == "html_block"]
    assert "<script>" not in paragraph and "&lt;script&gt;x&lt;/script&gt;" in paragraph
    assert "<script>" not in config_yaml(run)["html"]["announcement"]


def test_sphinx_parses_markdown_exactly_as_the_sanitiser_checks_it(tmp_path):
    """Jupyter Book's own defaults (colon fences, substitutions, math...) must not come back:
    a `:::{include}` the sanitiser reads as text would otherwise include a file."""
    import yaml
    from jupyter_book.config import get_final_config

    from tlcourse.course.site.sanitise import MYST_EXTENSIONS, URL_SCHEMES

    run = read_run(tiny_run(tmp_path / "run"))
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config_yaml(run)))
    sphinx, _ = get_final_config(user_yaml=tmp_path / "_config.yml", sourcedir=tmp_path,
                                 cli_config={"latex_individualpages": False})
    assert sphinx["myst_enable_extensions"] == MYST_EXTENSIONS
    assert list(sphinx["myst_url_schemes"]) == list(URL_SCHEMES)
    assert sphinx["myst_all_links_external"] is True
    assert sphinx["nb_execution_mode"] == "off"
    assert not sphinx.get("intersphinx_mapping")
