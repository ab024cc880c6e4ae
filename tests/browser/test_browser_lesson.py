"""A learner runs lesson 00 in JupyterLab, in Chromium, with the runner's smoke parameters.

What only a browser shows: tqdm's progress bars drawn as widgets (not as text), the plots as
images, and no cell with an error. The notebook is a copy with the smoke profile's values
injected by papermill (``tlcourse run --profile smoke`` does the same), so it runs in about a
minute on a CPU.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser_env import ROOT, SHOTS, need_browser

need_browser()  # skip here (fail under TLCOURSE_REQUIRE_BROWSER=1) before Playwright is imported

from learner import Notebook  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser

LESSON = "00_golden_rule.ipynb"
RUN_ALL_S = 600  # about a minute here with smoke parameters; bounded far above that


@pytest.fixture
def smoke_lesson(tmp_path: Path) -> tuple[Path, dict]:
    """``notebooks/00_golden_rule.ipynb`` with the smoke profile's parameters injected."""
    import papermill

    from tlcourse.course.runner import prepare_run

    plan = prepare_run(ROOT, profile="smoke", only=LESSON[:2])
    [selected] = plan.notebooks
    assert selected.path.name == LESSON
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    papermill.execute_notebook(str(selected.path), str(root / "notebooks" / LESSON),
                               parameters=dict(selected.parameters), prepare_only=True,
                               progress_bar=False)
    return root, dict(selected.parameters)


def test_lesson_00_shows_progress_widgets_and_plots(start_lab, smoke_lesson, page):
    root, parameters = smoke_lesson
    assert parameters.get("epochs") and parameters.get("image_size"), parameters
    # The decoded-image cache of this test session: lessons share it, as a learner's do.
    lab = start_lab(root, env={"TLCOURSE_CACHE": os.environ["TLCOURSE_CACHE"]})
    nb = Notebook(page, SHOTS, "lesson00")
    nb.open(lab.url(f"lab/tree/notebooks/{LESSON}"))
    injected = nb.code_cell("# Parameters")
    nb.shot("opened", injected)
    seconds = nb.run_all(RUN_ALL_S)
    nb.assert_every_cell_ran()

    # tqdm.auto in a kernel draws ipywidgets: one bar per fit() call stays on screen.
    bars = page.locator(".jp-OutputArea-output .widget-hprogress")
    fits = nb.page.locator(".jp-CodeCell").filter(
        has=page.locator(".jp-InputArea-editor", has_text="fit(")
    ).filter(has=page.locator(".jp-InputArea-editor", has_text="label="))
    expect(fits).to_have_count(2)
    for label in ("(a) from scratch", "(b) pretrained, frozen"):
        cell = fits.filter(has=page.locator(".jp-InputArea-editor", has_text=label))
        bar = cell.locator(".widget-hprogress")
        expect(bar).to_have_count(1, timeout=30_000)
        expect(bar).to_be_visible()
        # the bar's own text: "(a) from scratch: 100% ... 1/1"
        row = cell.locator(".widget-hbox").filter(has=page.locator(".widget-hprogress"))
        expect(row).to_contain_text(label)
        expect(row).to_contain_text("100%")
        nb.shot("progress-" + label[1], bar)
    assert bars.count() >= 2
    assert not page.get_by_text("Error displaying widget").count()
    assert not page.get_by_text("Loading widget...").count()

    # Plots arrive as images that the browser decoded (not a "<Figure size ...>" text).
    images = page.locator(".jp-OutputArea .jp-RenderedImage img")
    expect(images.first).to_be_visible(timeout=30_000)
    sizes = images.evaluate_all("els => els.map(e => [e.naturalWidth, e.naturalHeight])")
    assert len(sizes) >= 3 and all(w > 100 and h > 100 for w, h in sizes), sizes
    assert not page.locator(".jp-OutputArea-output").filter(has_text="<Figure size").count()
    for i in range(min(3, len(sizes))):
        nb.shot(f"plot-{i + 1}", images.nth(i))
    print(f"\nlesson 00 in the browser: run all {seconds:.0f} s, parameters {parameters}")
