"""Fixtures of the browser tests: Chromium through Playwright, a JupyterLab per test, a course copy.

The browser is Debian's Chromium (``apt-get install chromium``), driven by Playwright for
Python; Playwright's own browser download is never used (it needs the internet). Without
Chromium or Playwright the tests skip with one line that says what to install, except when
``TLCOURSE_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then they fail, and a session in which no
browser test ran fails too, so CI cannot pass with the browser tests silently gone.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from browser_env import CHROMIUM_FLAGS, REQUIRE_ENV, ROOT, SHOTS, need_browser, required
from lab_server import JupyterLab


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; skips (or, under TLCOURSE_REQUIRE_BROWSER=1, fails) without one."""
    return need_browser()


@pytest.fixture(scope="session")
def playwright_driver(chromium: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def page(playwright_driver, chromium: str, tmp_path: Path) -> Iterator[object]:
    """A fresh Chromium window (its own user-data folder), 1280 x 900, closed afterwards."""
    context = playwright_driver.chromium.launch_persistent_context(  # type: ignore[attr-defined]
        user_data_dir=str(tmp_path / "chromium-profile"),
        executable_path=chromium,
        args=CHROMIUM_FLAGS,
        headless=True,
        viewport={"width": 1280, "height": 900},
    )
    try:
        yield context.pages[0] if context.pages else context.new_page()
    finally:
        context.close()


@pytest.fixture
def start_lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., JupyterLab]]:
    """``start_lab(root, env)`` starts JupyterLab on ``root``; every one is stopped afterwards.

    Teardown stops each server and its kernels even when the test failed, and fails the test
    if any of their processes is left. Each server's log is kept beside the screenshots.
    """
    labs: list[JupyterLab] = []

    def start(root: Path, env: dict[str, str] | None = None) -> JupyterLab:
        lab = JupyterLab(root, tmp_path / f"lab-{len(labs)}", env=env)
        labs.append(lab)
        return lab.start()

    yield start
    problems = []
    for lab in labs:
        pgid = lab.proc.pid if lab.proc is not None else None
        try:
            lab.stop()
        except Exception as exc:  # stop every server, then report
            problems.append(f"{exc}")
        if pgid is not None and _group_exists(pgid):
            problems.append(f"process group {pgid} of JupyterLab still exists")
        if lab.kernel_pids():
            problems.append(f"kernels {lab.kernel_pids()} of JupyterLab still run")
        if lab.log_path.exists():
            SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lab.log_path, SHOTS / f"{request.node.name}-{lab.log_path.parent.name}.log")
    assert not problems, "; ".join(problems)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A copy of what the exercise notebooks need: ``exercises/`` with its banks."""
    root = tmp_path / "course"
    (root / "exercises").mkdir(parents=True)
    shutil.copytree(ROOT / "exercises" / "banks", root / "exercises" / "banks")
    for nb in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"):
        shutil.copy2(nb, root / "exercises" / nb.name)
    return root


# ---------------------------------------------------------------------- CI: never skipped

_RAN: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "browser" in report.keywords and not report.skipped:
        _RAN.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if required() and not _RAN and exitstatus in (0, 5):
        session.exitstatus = 1
        print(f"\n{REQUIRE_ENV}=1 but no browser test ran (all skipped or deselected); failing.")
