"""Missing course data fails the tests that need it; it never skips them.

CI always has the shared data folder, so a run without it is a broken set-up: a skip would turn
it into a green run that tested nothing. The tests that read the data request the session
fixture ``shared_data`` (tests/conftest.py), which fails naming ``TLCOURSE_DATA``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA_USER = "tests/data/test_fetch_offline.py"  # reads the PneumoniaMNIST file of the shared data


def test_a_data_test_without_the_data_fails_naming_tlcourse_data(tmp_path: Path) -> None:
    empty = tmp_path / "no-data-here"
    empty.mkdir()
    env = {**os.environ, "TLCOURSE_DATA": str(empty), "TLCOURSE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", DATA_USER],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\d+ (error|failed)", summary), summary
    assert "skipped" not in summary and "passed" not in summary, summary
    assert f"Real test data not found at {empty}; set TLCOURSE_DATA" in done.stdout
    assert list(empty.iterdir()) == []  # nothing was written into the data folder
