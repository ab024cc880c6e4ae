"""Reading tensor files that came from elsewhere without running anything hidden in them.

Caches and checkpoints sit in folders anyone may have copied files into. ``torch.load`` with
``weights_only=False`` unpickles arbitrary objects, and a pickle can call any function while it
loads. So :func:`load_plain` is the one ``torch.load`` for files the course did not just write
itself: ``weights_only=True``, which builds tensors, numbers, strings, lists and dicts and
refuses everything else before it is built. :func:`load_cache` is the same for rebuildable
caches: a file that fails is discarded with a warning instead of raising. Training, features
and the datasets' cache all read through here.

Model exports are zip archives that ``torch.export.load`` reads, not ``torch.load``; they are
inspected member by member in :mod:`tlcourse.deploy.archive_check`, which reuses
:func:`refusal_reason` for its one weights-only load (example inputs).
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import CourseError, UnsafeFileError


def load_plain(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain Python data, nothing else.

    A file holding any other object raises :class:`UnsafeFileError` (nothing in it ran); an
    unreadable or truncated file raises :class:`CourseError`. Both name the file.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(
            f"{path} holds more than tensors and plain data ({refusal_reason(exc)}); building it would "
            "mean a full unpickle, which can run code hidden in the file, so it was not loaded."
        ) from None
    except FileNotFoundError:
        raise CourseError(f"{path}: no such file.") from None
    except Exception as exc:  # truncated zip, wrong format, bad storage: torch's errors vary
        raise CourseError(
            f"{path} could not be read as tensor data ({exc.__class__.__name__}: {first_line(exc)}): "
            "it is damaged or was not written by torch.save."
        ) from None


def load_cache(path: Path, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """A cache file as a dict with ``keys``, or ``None`` when there is none or it cannot be trusted.

    Caches are rebuilt from the original data, so a file that is damaged, from an older format,
    or holds more than plain data is not an error: it is deleted, with a warning that names it,
    and the caller rebuilds it. It is never unpickled beyond what weights-only loading allows.
    """
    if not path.is_file():
        return None
    try:
        data = load_plain(path)
        if not isinstance(data, dict) or any(key not in data for key in keys):
            raise CourseError(f"{path} does not hold the entries a cache needs ({', '.join(keys)}).")
    except CourseError as exc:
        warnings.warn(
            f"Cache file {exc} It was discarded (nothing in it ran) and is rebuilt from the original "
            "data now.",
            stacklevel=3,
        )
        path.unlink(missing_ok=True)
        return None
    return data


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (colour codes removed, at most 200 characters)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return text.splitlines()[0][:200] if text else exc.__class__.__name__


def refusal_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused, in a few words (its own message is a page)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if found:
        return f"it would call {found.group(1)}, which builds no tensor"
    return first_line(exc)


__all__ = ["first_line", "load_cache", "load_plain", "refusal_reason"]
