"""Atomic file writes: a file the course writes is either complete or absent.

Downloads, checkpoints, caches, progress files and packs all follow one pattern: write to a
temporary file in the *same* folder (so the final rename never crosses file systems), then
``os.replace`` it over the target. An interrupted write (Ctrl-C, a killed kernel, a full disk)
leaves the previous file untouched and no half file where a loader would trust it.

The temporary file is created the way a plain ``open(path, "w")`` creates a file, with mode
``0o666 & ~umask``, not with ``tempfile.mkstemp``'s private ``0o600``: a pack, an exported model
or a run's ``summary.json`` is written to be read by others (the learners of a shared classroom
machine, a teacher's script). Replacing an existing file keeps that file's permission bits, as
writing into it would. :func:`temp_dir` does the same for a folder renamed into place.
"""
from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_TRIES = 100  # random names tried before giving up (a clash is astronomically unlikely)


def _temp_name(folder: Path, prefix: str, suffix: str) -> Path:
    return folder / f"{prefix}{secrets.token_hex(4)}{suffix}"


def _create_temp_file(target: Path, suffix: str) -> Path:
    """A new, empty file next to ``target``, created as ``open()`` would (umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        tmp = _temp_name(target.parent, f".{target.name}.", suffix)
        try:
            os.close(os.open(tmp, flags, 0o666))  # O_EXCL: never an existing file or a planted link
        except FileExistsError:
            continue
        try:
            if target.exists():  # replacing a file: keep the permissions its owner gave it
                os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp
    raise FileExistsError(f"Could not create a temporary file next to {target}.")


def temp_dir(parent: str | os.PathLike, prefix: str, suffix: str = "") -> Path:
    """A new, empty folder in ``parent``, created as ``os.mkdir`` would (umask applies).

    Unlike ``tempfile.mkdtemp`` (always ``0o700``), a folder that is filled and then renamed
    into place (an extracted dataset) ends up readable by everyone a plain ``mkdir`` would allow.
    """
    parent = Path(parent)
    for _ in range(_TRIES):
        path = _temp_name(parent, prefix, suffix)
        try:
            path.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"Could not create a temporary folder in {parent}.")


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` if the block succeeds.

    If the block raises, the temporary file is deleted and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp_file(target, suffix)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def torch_save(obj: Any, target: str | os.PathLike) -> Path:
    """``torch.save`` that never leaves a partial file at ``target``."""
    import torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
    return Path(target)


def write_bytes(data: bytes, target: str | os.PathLike) -> Path:
    """Write ``data`` to ``target`` atomically, flushed to disk before the rename.

    The ``fsync`` matters for files people keep (progress, exports): after a power cut the
    rename may survive while unflushed data does not, leaving an empty file under the old name.
    """
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(target)


def write_text(text: str, target: str | os.PathLike) -> Path:
    """Write ``text`` as UTF-8 (newlines as given, on every OS) to ``target`` atomically."""
    return write_bytes(text.encode("utf-8"), target)


def write_json(data: Any, target: str | os.PathLike, indent: int = 2) -> Path:
    return write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", target)


def why_unwritable(target: str | os.PathLike, exc: OSError) -> str:
    """A short reason, for a message, why writing ``target`` failed with ``exc``.

    Creating a folder under a regular file fails with "File exists" or "Not a directory",
    which does not say which file is in the way; this names it. Other failures (permission
    denied, disk full, read-only file system) are given as the system states them.
    """
    for parent in Path(target).parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    return f"{exc.strerror or exc} ({exc.filename or target})"
