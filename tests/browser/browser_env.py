"""Where the browser tests find Chromium, and what they do without it (skip, or fail in CI).

Kept free of any Playwright import, so that a machine without Playwright gets the one-line
skip below instead of an import error at collection.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "runs" / "browser"  # screenshots for a reviewer (runs/ is git-ignored)
REQUIRE_ENV = "TLCOURSE_REQUIRE_BROWSER"
CHROMIUM_ENV = "TLCOURSE_CHROMIUM"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]
INSTALL_HINT = (
    "install Chromium with `sudo apt-get install -y chromium` (or set TLCOURSE_CHROMIUM to a "
    "Chromium binary) and Playwright with `pip install -e '.[test]'`"
)


def required() -> bool:
    """``TLCOURSE_REQUIRE_BROWSER=1`` (CI): a missing browser is a failure, not a skip."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def find_chromium() -> str | None:
    """``TLCOURSE_CHROMIUM``, else the first Chromium on the PATH."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed"
    if find_chromium() is None:
        named = os.environ.get(CHROMIUM_ENV)
        return f"{CHROMIUM_ENV}={named} is not an executable file" if named else "Chromium is not on the PATH"
    return None


def need_browser() -> str:
    """The Chromium binary; otherwise skip the calling module (fail it under CI's flag)."""
    problem = missing_browser()
    if problem:
        line = f"browser tests need a browser: {problem}; {INSTALL_HINT}."
        if required():
            pytest.fail(f"{REQUIRE_ENV}=1 and {line}", pytrace=False)
        pytest.skip(line, allow_module_level=True)
    return find_chromium()  # type: ignore[return-value]
