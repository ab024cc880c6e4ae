"""Errors that tell a learner what went wrong and what to do next.

Every error the course raises on purpose is a :class:`CourseError`. Its message has three
parts: what was wrong, where, and the command or change that fixes it. The CLI prints the
message without a traceback and exits non-zero.
"""
from __future__ import annotations

from collections.abc import Iterable


class CourseError(Exception):
    """A problem the learner can fix; the message says how."""


class AssetNotFoundError(CourseError):
    """Pretrained weights or a dataset are not on this machine and cannot be downloaded."""


class ChecksumError(CourseError):
    """A file's sha256 did not match the recorded value."""


class UnsafeFileError(CourseError):
    """A file from elsewhere was refused because loading it could run code hidden in it.

    Raised before anything in the file is unpickled or evaluated: the message names the file,
    the part of it that was refused and why, and what to ask the sender for instead.
    """


class InvalidParameterError(CourseError, ValueError):
    """A parameter has the wrong type or is out of range."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> CourseError:
    """An error for a mistyped backbone, dataset, profile or notebook name, listing valid ones."""
    valid = sorted(valid)
    close = [v for v in valid if v.lower().startswith(str(name).lower()[:3])]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return CourseError(f"Unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}.")
