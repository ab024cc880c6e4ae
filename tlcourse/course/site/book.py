"""The Jupyter Book project the site is built from, and the build itself.

The book's source is a fresh temporary folder the site writes (never the run folder): the
sanitised notebooks (:mod:`.sanitise`), the pages (:mod:`.pages`) and Jupyter Book's two YAML
files, so no ``conf.py``, extension or setting can come from the run. Jupyter Book 1.x
(Sphinx + MyST-NB) then builds HTML in a child process with execution off and every proxy
variable pointing at a closed local port: a build that tried to download anything would fail
rather than quietly depend on the network. The finished HTML is checked for assets loaded
from another host (:mod:`.offline`) before it is put in place.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ... import atomic
from ...errors import CourseError
from .offline import drop_thebe, remote_assets
from .pages import config_yaml, download_path, landing_page, notebook_note, page_name, page_title, toc_yaml
from .rundir import RunFolder
from .sanitise import read_notebook, safe_notebook

BUILD_TIMEOUT_S = 1800
_NO_NETWORK = "http://127.0.0.1:9"  # the discard port: nothing listens, a request fails at once


def stage(run: RunFolder, src: Path) -> None:
    """Write the book's source for ``run`` into the empty folder ``src``."""
    import nbformat

    titles = {}
    for nb in run.notebooks:
        notebook = read_notebook(nb.path)
        titles[nb.relpath] = page_title(notebook, nb.stem)
        page = src / f"{page_name(nb)}.ipynb"
        page.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(safe_notebook(notebook, [notebook_note(run, nb)]), page)
        download = src / download_path(nb)
        download.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(nb.path, download)
    (src / "index.md").write_text(landing_page(run, titles), encoding="utf-8")
    for name, data in (("_toc.yml", toc_yaml(run)), ("_config.yml", config_yaml(run))):
        (src / name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                                encoding="utf-8")


def _offline_environment() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env[name] = _NO_NETWORK
    env["no_proxy"] = env["NO_PROXY"] = ""
    return env


def jupyter_book_build(src: Path, build: Path) -> Path:
    """Run ``jupyter-book build`` on ``src``; return the HTML folder or raise with its log."""
    try:
        import jupyter_book  # noqa: F401
    except ImportError as exc:
        raise CourseError(
            "Building the site needs Jupyter Book 1.x, which is not installed here. Install it "
            "with `pip install -e '.[site]'` (scripts/setup.sh does), then run the command again."
        ) from exc
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
               str(src), "--path-output", str(build), "--builder", "html", "--keep-going"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=_offline_environment(),
                              timeout=BUILD_TIMEOUT_S, cwd=src)
    except subprocess.TimeoutExpired as exc:
        raise CourseError(f"Jupyter Book did not finish building the site in {BUILD_TIMEOUT_S} s.") from exc
    html = build / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").is_file():
        log = (proc.stdout[-3000:] + "\n" + proc.stderr[-3000:]).strip()
        raise CourseError(f"Jupyter Book could not build the site (exit {proc.returncode}):\n{log}")
    return html


def refuse_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CourseError(f"--out {out} is a file, not a folder. Pick another --out DIR.")
    if out.exists() and any(out.iterdir()) and not force:
        raise CourseError(
            f"--out {out} already exists and is not empty; `tlcourse site` never overwrites a "
            "folder unasked. Pick another --out DIR, or add --force to replace it once the new "
            "site is built."
        )


def install(html: Path, out: Path) -> None:
    """Put the built site at ``out`` in one rename (an older site there goes only then)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = atomic.temp_dir(out.parent, f".{out.name}.")
    try:
        shutil.copytree(html, fresh, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".buildinfo"))
        if out.exists():
            old = atomic.temp_dir(out.parent, f".{out.name}.old.")
            os.replace(out, old / "site")
            os.replace(fresh, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(fresh, out)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


def check_offline(html: Path) -> None:
    """Drop what only the network could serve and is never used, then refuse what is left."""
    drop_thebe(html)
    found = remote_assets(html)
    if found:
        listing = "; ".join(f"{page}: {url}" for page, url in found[:5])
        raise CourseError(
            f"The built site loads {len(found)} asset(s) from the network, so it would not work "
            f"offline ({listing}). This is a bug of tlcourse site: please report it."
        )
