"""Atomic file writes: a file the course writes is either complete or absent.

Downloads, checkpoints, caches, progress files and packs all follow one pattern: write to a
temporary file in the *same* folder (so the final rename never crosses file systems), then
``os.replace`` it over the target. An interrupted write (Ctrl-C, a killed kernel, a full disk)
leaves the previous file untouched and no half file where a loader would trust it.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` if the block succeeds.

    If the block raises, the temporary file is deleted and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def torch_save(obj: Any, target: str | os.PathLike) -> Path:
    """``torch.save`` that never leaves a partial file at ``target``."""
    import torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
    return Path(target)


def write_text(text: str, target: str | os.PathLike) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


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
