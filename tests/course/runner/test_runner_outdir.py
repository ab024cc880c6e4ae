"""The run's output folder (tlcourse/course/runner/outdir.py): fresh, writable, never an
earlier run's, and nothing left behind when refused. Nothing here starts a kernel."""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from filesnap import course_sources, snapshot
from runner_fixture import REPO
from tlcourse.course.cli import main
from tlcourse.course.runner import run_course
from tlcourse.errors import CourseError


def test_refuses_existing_non_empty_out(course):
    out = course / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    with pytest.raises(CourseError, match="already exists and is not empty.*another --out"):
        run_course(course, out=out, progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _empty_sysfs_folder() -> Path | None:
    """An existing, empty folder that takes no files, even from root (sysfs), if there is one."""
    for candidate in ("/sys/kernel/debug", "/sys/kernel/tracing", "/sys/fs/fuse/connections",
                      "/sys/kernel/security", "/sys/kernel/software_nodes"):
        folder = Path(candidate)
        with contextlib.suppress(OSError):
            if folder.is_dir() and not any(folder.iterdir()):
                return folder
    return None


@pytest.mark.parametrize("where", ["under-a-file", "new-folder-in-sysfs", "empty-sysfs-folder"])
def test_out_that_cannot_be_written_is_refused_before_running(course, capsys, monkeypatch,
                                                             python3_kernel, where):
    # Tests run as root, for whom chmod takes nothing away: these paths refuse root too.
    denied = r"(permission denied \(.*\)|it is on a read-only file system|No such file.*)"
    if where == "under-a-file":
        blocker = course / "notes.txt"
        blocker.write_text("mine")
        out = blocker / "run"
        expected = f"Cannot create the output folder {re.escape(str(out))}: " + re.escape(
            f"{blocker} is a file, not a folder")
    elif where == "new-folder-in-sysfs":  # EPERM, or EROFS where /sys is mounted read-only
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no /sys on this system")
        out = Path("/sys/tlcourse-test-run")
        expected = f"Cannot create the output folder {re.escape(str(out))}: {denied}"
    else:
        out = _empty_sysfs_folder()
        if out is None:
            pytest.skip("no empty sysfs folder on this system")
        expected = f"Cannot write the run's results to {re.escape(str(out))}: {denied}"
    monkeypatch.chdir(course)
    before = {p: p.read_bytes() for p in course.rglob("*") if p.is_file()}
    existed = out.exists()
    rc = main(["run", "--profile", "smoke", "--only", "alpha", "--kernel", python3_kernel,
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert re.match(rf"tlcourse run: {expected}\. Pick a folder you can write to with --out DIR",
                    err), err
    assert out.exists() == existed and not (course / "runs").exists()
    if existed:
        assert list(out.iterdir()) == []
    assert {p: p.read_bytes() for p in course.rglob("*") if p.is_file()} == before


def test_out_that_is_a_file_is_refused(course):
    target = course / "result.txt"
    target.write_text("keep me")
    with pytest.raises(CourseError, match="is a file, not a folder"):
        run_course(course, out=target, progress=False)
    assert target.read_text() == "keep me"


def test_out_parents_made_for_a_refused_run_are_removed(course, monkeypatch):
    # Folders that can be made but not written into: no real path does that to root, so the
    # write check's OS error is simulated. The folders the runner made go again.
    import tempfile as tempfile_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile_module, "mkstemp", refuse)
    out = course / "new" / "deeper" / "run"
    with pytest.raises(CourseError, match=r"Cannot write the run's results to .*run: "
                                          r"permission denied"):
        run_course(course, out=out, progress=False)
    assert not (course / "new").exists()


def test_run_never_overwrites_sources_or_an_earlier_run(tmp_path: Path) -> None:
    sources = course_sources()
    earlier = tmp_path / "runs" / "monday"
    earlier.mkdir(parents=True)
    (earlier / "summary.json").write_text('{"profile": "smoke"}\n')
    (earlier / "00_golden_rule.ipynb").write_text("{}\n")
    kept = snapshot(earlier)
    for out in (earlier, REPO / "notebooks"):
        with pytest.raises(CourseError) as info:
            run_course(REPO, profile="smoke", only="00", out=out, progress=False)
        assert f"The output directory {out} already exists and is not empty" in str(info.value)
        assert "never overwrites earlier results" in str(info.value) and "Pick another --out DIR" in str(info.value)
    assert snapshot(earlier) == kept
    assert course_sources() == sources
