"""The text the site writes itself: the landing page, the run line every page carries, the
note at the top of each notebook page, and Jupyter Book's ``_toc.yml`` and ``_config.yml``.

Every value taken from the run folder (profile, parameters, versions, results, titles) goes
through :func:`~.sanitise.escape_markdown` (Markdown) or :func:`html.escape` (the HTML of the
banner), so a run folder cannot put markup into the pages through its summary either.
"""
from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .rundir import RunFolder, RunNotebook
from .sanitise import MYST_EXTENSIONS, URL_SCHEMES, escape_markdown

# The executed notebooks, copied beside their pages by Sphinx's html_extra_path (never parsed
# as pages): notebooks/03_freezing.html offers notebooks/03_freezing.ipynb.
DOWNLOADS = "_run"
_ENV_FACTS = (("device", "device"), ("cpu_threads", "CPU threads"), ("python", "Python"),
              ("torch", "torch"), ("torchvision", "torchvision"), ("numpy", "numpy"),
              ("tlcourse", "tlcourse"), ("platform", "platform"))
_STATUS = {"ok": "ok", "failed": "FAILED", "interrupted": "interrupted"}


def value_text(value: Any) -> str:
    """A recorded value for a table cell: floats to 4 significant digits, lists as JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value)
        return text if len(text) <= 120 else text[:117] + "..."
    return str(value)


def parameters_text(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={value_text(v)}" for k, v in values.items()) or "the notebook's defaults"


def run_line(run: RunFolder) -> str:
    """"Run of 2026-12-01T08:44 on cpu, profile smoke, parameters: ..." (plain text)."""
    overrides = run.summary.get("parameters") or {}
    given = parameters_text(overrides) if isinstance(overrides, Mapping) and overrides else "none"
    device = run.environment.get("device", "unknown device")
    return (f"Results of the tlcourse run of {run.text('started')} on {device}, profile "
            f"{run.text('profile')}, command-line parameters: {given}. The numbers on these "
            "pages are this run's.")


def banner_html(run: RunFolder) -> str:
    """The run line for the theme's announcement bar, shown at the top of every page."""
    return html.escape(run_line(run))


def page_title(notebook: Any, fallback: str) -> str:
    """The notebook's first heading, as the landing page names it."""
    for cell in notebook.get("cells") or []:
        if cell.get("cell_type") != "markdown":
            continue
        for line in str(cell.get("source") or "").splitlines():
            match = re.match(r"^#{1,6}\s+(.*\S)\s*$", line)
            if match:
                return match[1].strip("# ").replace("`", "")
    return fallback


def page_name(nb: RunNotebook) -> str:
    """The page's document name: ``notebooks/03_freezing`` or ``exercises/03_freezing``."""
    folder = "exercises" if nb.exercise else "notebooks"
    return f"{folder}/{nb.stem}"


def download_path(nb: RunNotebook) -> str:
    return f"{DOWNLOADS}/{page_name(nb)}.ipynb"


def notebook_note(run: RunFolder, nb: RunNotebook) -> str:
    """The first cell of a notebook's page: which run, this notebook's outcome and parameters,
    a link to the executed notebook and, for an exercise, how to answer it."""
    result = nb.result
    outcome = f"{_STATUS.get(result.status, result.status)} in {result.seconds:.1f} s"
    link = html.escape(f"{nb.stem}.ipynb")  # beside the page (see DOWNLOADS)
    # An HTML paragraph, every value escaped: MyST-NB would resolve a Markdown link to
    # "03_freezing.ipynb" as this page itself rather than the file beside it.
    lines = [
        f"**{escape_markdown(run_line(run))}**",
        "",
        f"<p>This notebook: {html.escape(outcome)}; parameters "
        f"{html.escape(parameters_text(result.parameters))}. <a href=\"{link}\" download>Download "
        "the executed notebook</a> to open it in JupyterLab.</p>",
    ]
    if result.status != "ok":
        lines += ["", f"**This notebook did not finish in this run:** {escape_markdown(result.error or result.status)}"]
    if nb.exercise:
        lines += ["", "The questions of this exercise are interactive widgets in JupyterLab; this "
                  "page shows each one as text (its question and options) as the run printed it. "
                  f"To answer them and get feedback, open {escape_markdown(nb.relpath)} in "
                  "JupyterLab (the course's `exercises/` folder, or the download above)."]
    return "\n".join(lines)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _notebook_rows(notebooks: list[RunNotebook], titles: Mapping[str, str]) -> list[list[str]]:
    return [[f"[{escape_markdown(titles[nb.relpath])}]({page_name(nb)}.html)",
             escape_markdown(_STATUS.get(nb.result.status, nb.result.status)),
             f"{nb.result.seconds:.1f}", escape_markdown(parameters_text(nb.result.parameters))]
            for nb in notebooks]


def _facts(run: RunFolder) -> list[list[str]]:
    total = sum(nb.result.seconds for nb in run.notebooks)
    timeout = run.summary.get("timeout")
    facts = [("started", run.text("started")), ("finished", run.text("finished") or "not recorded"),
             ("profile", f"{run.text('profile')} ({run.text('description')})"
              if run.text("description") else run.text("profile")),
             ("command-line parameters", parameters_text(run.summary.get("parameters") or {})
              if run.summary.get("parameters") else "none"),
             ("kernel", run.text("kernel")),
             ("per-cell timeout", f"{timeout} s" if timeout else "none"),
             ("notebooks", f"{len(run.notebooks)} shown, {total:.1f} s in total")]
    env = run.environment
    facts += [(label, value_text(env[key])) for key, label in _ENV_FACTS if key in env]
    return [[escape_markdown(k), escape_markdown(v)] for k, v in facts]


def _results(run: RunFolder, titles: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    for nb in run.notebooks:
        if nb.values:
            lines += [f"### {escape_markdown(titles[nb.relpath])}", ""]
            lines += _table(["result", "value"], [[escape_markdown(k), escape_markdown(value_text(v))]
                                                   for k, v in nb.values.items()])
    return lines or ["No notebook recorded results.", ""]


def landing_page(run: RunFolder, titles: Mapping[str, str]) -> str:
    """``index.md``: what this site is, the run's facts, the lessons, exercises, key results."""
    lines = [f"# Transfer learning for computer vision: the run of {escape_markdown(run.text('started'))}",
             "",
             "These pages are the course's notebooks as one `tlcourse run` executed them, with "
             "their outputs and figures. To run them yourself, open the notebooks in JupyterLab "
             "(each page links to its executed notebook).",
             "", f"**{escape_markdown(run_line(run))}**", "", "## The run", ""]
    lines += _table(["", ""], _facts(run))
    header = ["notebook", "status", "time (s)", "parameters"]
    lines += ["## Lessons", ""] + _table(header, _notebook_rows(run.lessons, titles))
    if run.exercises:
        lines += ["## Exercises", ""] + _table(header, _notebook_rows(run.exercises, titles))
    if run.unwritten:
        lines += ["These notebooks of the run have no page: they failed before their executed "
                  "copy was written.", ""]
        lines += [f"- {escape_markdown(r.name)}: {escape_markdown(r.error or r.status)}"
                  for r in run.unwritten] + [""]
    lines += ["## Key results", "", "What each notebook recorded for the runner "
              "(`tlcourse.course.results.record`).", ""] + _results(run, titles)
    return "\n".join(lines)


def toc_yaml(run: RunFolder) -> dict[str, Any]:
    parts = [{"caption": "Lessons", "chapters": [{"file": page_name(nb)} for nb in run.lessons]}]
    if run.exercises:
        parts.append({"caption": "Exercises",
                      "chapters": [{"file": page_name(nb)} for nb in run.exercises]})
    return {"format": "jb-book", "root": "index", "parts": parts}


def config_yaml(run: RunFolder) -> dict[str, Any]:
    """Jupyter Book's settings: nothing executes, nothing loads from the network, nothing
    from the run folder is a setting (its text only fills the banner, escaped)."""
    return {
        "title": f"tlcourse: run of {run.text('started')[:16]}",
        "author": "tlcourse",
        "copyright": run.text("started")[:4],
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", f"{DOWNLOADS}/**", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},
        "html": {
            "announcement": banner_html(run),
            "use_edit_page_button": False, "use_repository_button": False,
            "use_issues_button": False, "use_multitoc_numbering": False,
            "home_page_in_navbar": True, "baseurl": "",
            "comments": {"hypothesis": False, "utterances": False},
            "analytics": {"google_analytics_id": "", "plausible_analytics_domain": ""},
        },
        "launch_buttons": {"thebe": False, "binderhub_url": "", "jupyterhub_url": "",
                           "colab_url": "", "deepnote_url": ""},
        "repository": {"url": ""},
        # The theme's own .ipynb/.pdf download button would offer the sanitised copy and a
        # PDF that is never built: each page links to its executed notebook instead.
        # MyST's settings go straight to Sphinx: Jupyter Book's `parse:` section only *adds*
        # to its default extensions (colon fences, math, substitutions...), and the parser that
        # checks a cell in .sanitise must be exactly the one Sphinx uses. Links are written into
        # the pages as they are, never resolved to a file of the building machine.
        "sphinx": {"recursive_update": True,
                   "config": {"myst_enable_extensions": list(MYST_EXTENSIONS),
                              "myst_url_schemes": list(URL_SCHEMES),
                              "myst_all_links_external": True,
                              "html_copy_source": False, "html_show_sourcelink": False,
                              "html_extra_path": [DOWNLOADS],
                              "html_theme_options": {"use_download_button": False}}},
    }
