"""A finished task's files, written under ``<out>/tasks/<folder>/`` all at once.

The files arrive from a worker (possibly another machine): each is written into a hidden
``.<folder>.partial-*`` folder, which is then renamed into place, so a task folder under
``--out`` is either complete or absent, whatever stops the sweep. A file name that would land
outside the task's folder is refused.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from ...atomic import temp_dir
from ...errors import CourseError

TASKS_DIR = "tasks"


def _inside(folder: Path, name: str) -> Path:
    parts = name.split("/")
    if any(part in ("", ".", "..") or "\\" in part or "\0" in part for part in parts):
        raise CourseError(
            f"A worker sent a file named {name!r}, which is not a plain path inside the task's "
            "folder; nothing of that task was written. Check what runs on the workers."
        )
    return folder.joinpath(*parts)


def task_folder(out: Path, folder: str) -> Path:
    return out / TASKS_DIR / folder


def store_files(out: Path, folder: str, files: dict[str, bytes]) -> Path:
    """Write ``files`` as ``<out>/tasks/<folder>/``, replacing an earlier attempt's folder."""
    target = task_folder(out, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = temp_dir(target.parent, f".{folder}.partial-")
    try:
        for name, data in files.items():
            path = _inside(partial, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if target.exists():  # an earlier failed attempt: moved aside, then removed
            stale = temp_dir(target.parent, f".{folder}.stale-")
            target.rename(stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        partial.rename(target)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(partial)
        raise
    return target
