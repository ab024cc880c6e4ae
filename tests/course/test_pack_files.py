"""``tlcourse pack --out FILE``: never a replaced file without ``--force``, never a half pack.

A folder it cannot write to, or a disk that fills up half-way, gives one clear line, no
traceback, and leaves the folder (and any pack already at ``--out``) exactly as it was. The
pack is the smallest real one (``small_packs``: PneumoniaMNIST, 2.4 MB).
"""
from __future__ import annotations

import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli_output import one_line_error
from filesnap import snapshot
from loopback_server import shared_data_dir
from tlcourse.course.cli import main
from tlcourse.course.pack import MANIFEST_NAME

DATA = shared_data_dir()
NPZ = "pneumoniamnist/pneumoniamnist.npz"

pytestmark = pytest.mark.usefixtures("shared_data")  # no data is a failure, not a skip


def test_pack_refuses_to_overwrite_an_existing_file_unless_forced(
    tmp_path: Path, small_packs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "classroom.tar"
    out.parent.mkdir()
    out.write_bytes(b"last week's pack, handed out already\n")
    before = snapshot(out.parent)

    assert main(["pack", "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line == (
        f"tlcourse pack: The pack file {out} already exists; tlcourse pack never overwrites a file. "
        "Pick another --out FILE, or add --force to replace it."
    )
    assert snapshot(out.parent) == before  # untouched, and no temporary file left beside it

    assert main(["pack", "--out", str(out), "--force"]) == 0
    assert "Wrote" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["classroom.tar"]
    with tarfile.open(out, "r:") as tar:
        assert tar.getnames() == [MANIFEST_NAME, f"data/{NPZ}"]
        assert tar.extractfile(f"data/{NPZ}").read() == (DATA / NPZ).read_bytes()


@pytest.mark.parametrize("depth", [1, 2])
def test_pack_under_a_regular_file_says_so_in_one_line(
    depth: int, tmp_path: Path, small_packs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out notes.txt/classroom.tar`` (or deeper): the folder cannot exist, even for root."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("the teacher's notes\n")
    out = blocker.joinpath(*["sub"] * (depth - 1), "classroom.tar")
    before = snapshot(tmp_path)
    assert main(["pack", "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"tlcourse pack: Cannot write --out {out}: {blocker} is a file, not a folder.")
    assert "Nothing was written" in line
    assert snapshot(tmp_path) == before


@contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """Writes that would make a file larger than ``nbytes`` fail with EFBIG, for root too: what a
    full USB stick or a quota looks like to a program (the soft limit only, restored after)."""
    resource = pytest.importorskip("resource")
    import signal

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the signal kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes if hard == resource.RLIM_INFINITY else min(nbytes, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_pack_that_cannot_be_written_fails_in_one_line_and_leaves_nothing(
    tmp_path: Path, small_packs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The disk refuses the pack half-way through writing it."""
    out = tmp_path / "out" / "classroom.tar"
    out.parent.mkdir()
    (out.parent / "README.txt").write_text("other files in the folder stay as they are\n")
    before = snapshot(out.parent)
    with file_size_limit(1 << 20):  # the 2.4 MB pack stops after 1 MB
        status = main(["pack", "--out", str(out)])
    assert status == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"tlcourse pack: Could not write the pack {out}: File too large.")
    assert "Nothing was written" in line
    assert snapshot(out.parent) == before  # no pack, no half pack, no temporary file

    out.write_bytes(b"last week's pack\n")  # with --force, the old pack survives the failure
    before = snapshot(out.parent)
    with file_size_limit(1 << 20):
        assert main(["pack", "--out", str(out), "--force"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "Nothing was written" in line and "The file that was at --out is unchanged." in line
    assert snapshot(out.parent) == before
