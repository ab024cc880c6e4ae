"""The run's output folder: fresh, writable, and never an earlier run's.

A folder that cannot take the run's results is refused before an hour of training, not when
the first summary is written, and a refused ``--out`` leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from ...errors import CourseError
from .summary import load_summary, resume_command

_PICK_ANOTHER = ("Pick a folder you can write to with --out DIR (for example "
                 "--out ~/tlcourse-runs/today).")


def _write_problem(path: Path, exc: OSError) -> str:
    """Why a folder cannot be written, in words: the file in the way, read-only, permission."""
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"{ancestor} is a file, not a folder"
            break
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({exc.strerror})"
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    return exc.strerror or str(exc)


def check_writable(out: Path, what: str) -> None:
    """Create and delete one empty file in ``out``, or refuse saying why it cannot be written."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".tlcourse-write-check-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CourseError(
            f"Cannot write {what} to {out}: {_write_problem(out, exc)}. {_PICK_ANOTHER}"
        ) from exc


def _refuse_existing(out: Path) -> None:
    """A file, or a folder with anything in it (the hint says how to resume an earlier run)."""
    if out.exists() and not out.is_dir():
        raise CourseError(
            f"--out {out} is a file, not a folder. Pick another --out DIR, or omit --out to get "
            "a fresh runs/<timestamp>/."
        )
    if out.exists() and any(out.iterdir()):
        hint = ""
        with contextlib.suppress(CourseError):
            earlier = load_summary(out)
            if earlier.not_started or earlier.failed:
                hint = (f" If it is a run that was interrupted, finish it with: "
                        f"{resume_command(out)}.")
        raise CourseError(
            f"The output directory {out} already exists and is not empty; the runner never "
            "overwrites earlier results. Pick another --out DIR, or omit --out to get a fresh "
            f"runs/<timestamp>/.{hint}"
        )


def prepare_out(out: Path) -> None:
    """Create the empty output folder, or refuse (one clear reason, nothing left behind)."""
    _refuse_existing(out)
    missing = [folder for folder in (out, *out.parents) if not folder.exists()]
    made: list[Path] = []
    try:
        for folder in reversed(missing):  # outermost first, so each mkdir says which one failed
            folder.mkdir()
            made.append(folder)
        check_writable(out, "the run's results")
    except (OSError, CourseError) as exc:
        for folder in reversed(made):  # nothing half-made stays behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, CourseError):
            raise
        raise CourseError(
            f"Cannot create the output folder {out}: {_write_problem(out, exc)}. {_PICK_ANOTHER}"
        ) from exc
