"""The command line on hostile machines: ``tlcourse doctor`` with a torch cache
(``TORCH_HOME``) that cannot be written gives a failed check with its fix.

Tests run as root (here and in CI), so a folder cannot be made unwritable with chmod; a path
*under a regular file* cannot be created by anyone, which is what these tests use.
``tlcourse predict`` on hostile photos is tests/deploy/test_predict.py and test_images.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from filesnap import snapshot
from tlcourse.cli import main


# ----------------------------------------------------------------------------- doctor


def test_doctor_with_an_unwritable_torch_cache_reports_a_failed_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "torch-home-is-a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("TORCH_HOME", str(blocker / "hub"))
    before = snapshot(tmp_path)
    code = main(["doctor"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    weights = [line for line in out.splitlines() if "weights mobilenet_v2" in line]
    assert len(weights) == 1 and weights[0].startswith("FAIL"), out
    assert f"{blocker} is a file, not a folder" in weights[0]  # what is wrong, where
    assert "TORCH_HOME" in weights[0] and "tlcourse doctor" in weights[0]  # and how to fix it
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert f"\n{len(failed)} problem(s) stop the course from running" in out
    assert "Traceback" not in out + err
    assert snapshot(tmp_path) == before  # the file in the way is untouched, nothing half-copied
