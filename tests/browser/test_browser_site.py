"""The smoke run's website (``tlcourse site``) in Chromium, opened from disk with no server and
no network: the landing page and lesson 00 render with their figures and the search box.

The site comes from the session's smoke run (tests/conftest.py), which the notebook tests run
anyway; run alone (``pytest -m browser``) this test pays for that run first.
"""
from __future__ import annotations

import pytest

from browser_env import SHOTS, need_browser

need_browser()  # skip here (fail under TLCOURSE_REQUIRE_BROWSER=1) before Playwright is imported

from playwright.sync_api import expect  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]

LESSON = "notebooks/00_golden_rule.html"


def _no_network(page):
    """Fail any request that leaves the file system, and remember it."""
    remote = []

    def route(request_route):
        remote.append(request_route.request.url)
        request_route.abort()

    page.route("http*://**", route)
    return remote


def _images_decoded(page, selector: str) -> int:
    """How many images under ``selector`` the browser actually decoded (naturalWidth > 0)."""
    return page.eval_on_selector_all(selector, "els => els.filter(e => e.complete && e.naturalWidth > 0).length")


def test_landing_page_and_a_lesson_render_offline_with_figures(smoke_site, page):
    remote = _no_network(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto((smoke_site / "index.html").as_uri())
    expect(page.locator("h1").first).to_contain_text("Transfer learning for computer vision")
    expect(page.get_by_text("profile smoke").first).to_be_visible()
    expect(page.locator("table").first).to_be_visible()
    expect(page.locator("a[href='notebooks/00_golden_rule.html']").first).to_be_visible()
    page.screenshot(path=str(SHOTS / "site-01-landing.png"), full_page=False)

    page.goto((smoke_site / LESSON).as_uri())
    expect(page.locator("h1").first).to_contain_text("00")
    figures = page.locator("article img")
    expect(figures.first).to_be_visible(timeout=30_000)
    assert _images_decoded(page, "article img") == figures.count() >= 2
    expect(page.get_by_role("link", name="Download the executed notebook")).to_have_attribute(
        "href", "00_golden_rule.ipynb")
    figures.first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "site-02-lesson00-figure.png"))
    # The theme's search works from disk: its index is a local script.
    page.goto((smoke_site / "search.html").as_uri() + "?q=pretrained")
    expect(page.locator("#search-results li").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(SHOTS / "site-03-search.png"))
    assert remote == [], f"the site asked the network for {remote}"
