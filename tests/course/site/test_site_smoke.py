"""The website of the smoke run (the ``smoke_site`` fixture of tests/conftest.py): what CI
checks on the real course, after the notebook tests have run it."""
from __future__ import annotations

from pathlib import Path

import pytest

from site_checks import broken_refs, images, pages, raw_problems, visible_text
from tlcourse.course.site.offline import remote_assets

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[3]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))


def test_every_lesson_and_exercise_has_a_page_saying_which_run(smoke_site, smoke_run):
    out, _ = smoke_run
    expected = [f"notebooks/{p.stem}.html" for p in LESSONS] + [f"exercises/{p.stem}.html" for p in EXERCISES]
    missing = [name for name in expected if not (smoke_site / name).is_file()]
    assert not missing
    index = visible_text(smoke_site / "index.html")
    for name in expected:
        page = smoke_site / name
        assert "profile smoke" in visible_text(page), name
        assert (page.with_suffix(".ipynb")).is_file(), f"{name}: its executed notebook is not beside it"
    for fact in ("The run", "Lessons", "Exercises", "Key results", "torch", "device"):
        assert fact in index, fact


def test_images_exist_links_resolve_no_raw_error_or_widget_repr(smoke_site):
    assert broken_refs(smoke_site) == []
    assert raw_problems(smoke_site) == []
    assert remote_assets(smoke_site) == []
    for page in pages(smoke_site):
        for src in images(page):
            assert (page.parent / src).resolve().is_file(), f"{page.name}: {src}"
    figures = sum(len(images(smoke_site / "notebooks" / f"{p.stem}.html")) for p in LESSONS)
    assert figures >= len(LESSONS), "the lessons' plots should show as images"


def test_exercise_questions_read_as_text_with_the_jupyterlab_note(smoke_site, monkeypatch):
    import nbformat

    from tlcourse.exercises.bank import find_bank, load_bank

    monkeypatch.setenv("TLCOURSE_BANKS", str(ROOT / "exercises" / "banks"))
    for path in EXERCISES:
        text = " ".join(visible_text(smoke_site / "exercises" / f"{path.stem}.html").split())
        assert f"open exercises/{path.name} in JupyterLab" in text
        source = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
        asked = [q.id for q in load_bank(find_bank(path.stem)) if f'ex.ask("{q.id}")' in source]
        assert asked, path.name
        for qid in asked:  # each question the notebook asks shows its prompt as text
            assert f"[{qid}]" in text, f"{path.name}: question {qid} is not on its page"
