"""``tlcourse site RUN_DIR --out DIR``: a course run as a static website, read before installing.

An instructor runs the course on their machine (``tlcourse run``, or ``tlcourse run --site``)
and hands the class the result as pages: every lesson and exercise notebook with the outputs
and figures of *that* run, a landing page with the run's facts and key results, a search box,
and each page's executed notebook to download. The site is plain files: it opens from disk
(``index.html``) with no network, and any web server can serve it.

A short pipeline, one module a step:

1. :mod:`.rundir` reads the run folder as untrusted input (every path in ``summary.json``
   checked to stay inside it; anything else is a clear :class:`~tlcourse.errors.CourseError`);
2. :mod:`.sanitise` rebuilds each executed notebook from what is safe to show (plain Markdown,
   text, checked images, bleach-cleaned HTML, widgets as text via :mod:`.widgets`);
3. :mod:`.pages` writes the landing page, the run line every page carries and the note at the
   top of each notebook page; :mod:`.book` stages a Jupyter Book project in a temporary folder
   and builds it with execution off and no network;
4. :mod:`.offline` checks the HTML loads nothing from another host; the site then replaces
   ``--out`` in one rename.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from .book import refuse_out, check_offline, install, jupyter_book_build, stage
from .rundir import RunFolder, RunNotebook, read_run

SITE_DIR = "site"  # where `tlcourse run --site` puts it, inside the run folder

__all__ = ["SITE_DIR", "RunFolder", "RunNotebook", "build_site", "cli_site", "read_run"]


def build_site(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
               force: bool = False, stream: TextIO | None = None) -> Path:
    """Build the website of the run in ``run_dir`` into ``out`` (default ``run_dir/site``).

    ``out`` must not exist or be empty unless ``force``; with ``force`` an older site there is
    replaced only once the new one is complete. Returns the site folder (open its index.html).
    """
    stream = stream or sys.stdout
    run = read_run(run_dir)
    target = (Path(out).expanduser() if out is not None else run.path / SITE_DIR).resolve()
    refuse_out(target, force)
    start = time.perf_counter()
    print(f"tlcourse site: {len(run.lessons)} lesson(s) and {len(run.exercises)} exercise "
          f"notebook(s) of {run.path} -> {target}", file=stream, flush=True)
    with tempfile.TemporaryDirectory(prefix="tlcourse-site-") as tmp:
        src = Path(tmp) / "book"
        src.mkdir()
        stage(run, src)
        html = jupyter_book_build(src, Path(tmp) / "build")
        check_offline(html)
        install(html, target)
    print(f"tlcourse site: built in {time.perf_counter() - start:.1f} s. Open "
          f"{target / 'index.html'}", file=stream, flush=True)
    return target


def cli_site(args: Any) -> int:
    build_site(args.run_dir, args.out, force=bool(args.force))
    return 0
