"""`tlcourse site` end to end on a small hand-built run folder, hostile content included:
Jupyter Book really builds it (tens of seconds), so these tests are marked slow."""
from __future__ import annotations

import io
from html.parser import HTMLParser

import pytest

from cli_output import one_line_error
from site_checks import broken_refs, images, pages, raw_problems, visible_text
from site_fixture import SECRET, tiny_run
from tlcourse.course.cli import main
from tlcourse.course.site import build_site
from tlcourse.course.site.offline import remote_assets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    run = tiny_run(tmp_path_factory.mktemp("site") / "run", hostile=True)
    site = build_site(run, run.parent / "site", stream=io.StringIO())
    return run, site


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside, self.bodies, self.handlers = False, [], []

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "script"
        self.handlers += [value or "" for name, value in attrs if name.startswith("on")]

    def handle_data(self, data):
        if self.inside:
            self.bodies.append(data)

    def handle_endtag(self, tag):
        self.inside = False


def test_every_notebook_has_a_page_with_the_run_line_and_its_download(built):
    _, site = built
    names = {p.relative_to(site).as_posix() for p in pages(site)}
    assert {"index.html", "search.html", "notebooks/00_tiny.html", "exercises/01_tiny.html"} <= names
    for page in pages(site):
        if page.name != "genindex.html":
            assert "Results of the tlcourse run of 2026-12-01T09:00:00+00:00 on cpu, profile smoke" in visible_text(page)
    assert (site / "notebooks" / "00_tiny.ipynb").is_file()
    assert (site / "searchindex.js").is_file()


def test_links_and_images_resolve_and_nothing_comes_from_the_network(built):
    _, site = built
    assert broken_refs(site) == []
    assert remote_assets(site) == []
    [figure] = images(site / "notebooks" / "00_tiny.html")
    assert (site / "notebooks" / figure).resolve().read_bytes().startswith(b"\x89PNG")


def test_widgets_read_as_text_and_no_raw_error(built):
    _, site = built
    assert raw_problems(site) == []
    lesson = " ".join(visible_text(site / "notebooks" / "00_tiny.html").split())
    assert "(a) from scratch: 100% |████████████████████| 3/3" in lesson
    exercise = visible_text(site / "exercises" / "01_tiny.html")
    assert "[q1] Which layers does a frozen backbone train?" in exercise and "b) only the new head" in exercise
    assert "open exercises/01_tiny.ipynb in JupyterLab" in " ".join(exercise.split())


def test_a_script_from_the_run_folder_is_shown_as_text_never_run(built):
    _, site = built
    for page in pages(site):
        scripts = _Scripts()
        scripts.feed(page.read_text(encoding="utf-8"))
        assert not any("alert" in body for body in scripts.bodies), page
        assert not any("alert" in handler for handler in scripts.handlers), page  # the theme has its own
    assert "<script>alert('from the run folder')</script>" in visible_text(site / "notebooks" / "00_tiny.html")


def test_no_file_of_the_building_machine_is_copied_into_the_site(built):
    _, site = built
    for path in site.rglob("*"):
        if path.is_file() and path.suffix != ".ipynb":  # the run's own notebook is offered as is
            assert SECRET.encode() not in path.read_bytes(), path


def test_an_existing_site_is_replaced_only_with_force(built, capsys):
    run, site = built
    assert main(["site", str(run), "--out", str(site)]) == 2
    assert "already exists and is not empty" in one_line_error(capsys.readouterr().err)
    (site / "stale.txt").write_text("old")
    assert main(["site", str(run), "--out", str(site), "--force"]) == 0
    assert not (site / "stale.txt").exists() and (site / "index.html").is_file()


def test_a_folder_that_is_not_a_run_is_one_clear_line(tmp_path, capsys):
    assert main(["site", str(tmp_path), "--out", str(tmp_path / "site")]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"tlcourse site: {tmp_path}: not a run folder (it has no summary.json).")
    assert not (tmp_path / "site").exists()


def test_run_with_site_builds_the_site_at_the_end_failed_notebooks_included(
        tmp_path, monkeypatch, python3_kernel, capsys):
    """``tlcourse run --site`` on the runner tests' fixture course: its 00_boom divides by zero
    (a page that says so), its exercise has no kernelspec and fails before papermill writes it
    (no page, a line on the landing page)."""
    import shutil
    from pathlib import Path

    course = tmp_path / "course"
    shutil.copytree(Path(__file__).resolve().parents[2] / "fixtures" / "notebooks" / "course", course)
    monkeypatch.setenv("TLCOURSE_ROOT", str(course))
    out = tmp_path / "run"
    status = main(["run", "--profile", "smoke", "--exercises", "--out", str(out), "--site",
                   "--kernel", python3_kernel])
    assert status == 1  # 00_boom failed; the site is built all the same
    site = out / "site"
    assert {p.relative_to(site).as_posix() for p in pages(site)} >= {
        "index.html", "notebooks/00_boom.html", "notebooks/01_alpha.html"}
    boom = " ".join(visible_text(site / "notebooks" / "00_boom.html").split())
    assert "This notebook did not finish in this run: ZeroDivisionError" in boom
    index = " ".join(visible_text(site / "index.html").split())
    assert "FAILED" in index and "exercises/00_alpha.ipynb: ValueError: No language found" in index
    assert broken_refs(site) == []
    assert f"Open {site / 'index.html'}" in capsys.readouterr().out
