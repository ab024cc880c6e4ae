"""Pickle payloads for the tests of files from others (model exports, checkpoints, caches).

Each payload, if anything unpickled it, would create a marker file (``pathlib.Path.touch``)
and then hand back the value the loader expected, so that on a vulnerable loader the attack
is silent: the file loads as usual. Tests assert that the marker never appears.
"""
from __future__ import annotations

import io
import operator
import pathlib
from pathlib import Path
from typing import Any

import torch


class Touch:
    """Unpickles to ``Path(marker).touch()``: stands for any code an attacker wants to run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


class TouchThen:
    """Unpickles to ``value`` after running the payload: a load that looks perfectly normal."""

    def __init__(self, marker: Path, value: Any) -> None:
        self.marker, self.value = marker, value

    def __reduce__(self) -> tuple[Any, ...]:
        return (operator.getitem, ((Touch(self.marker), self.value), 1))


def torch_payload(marker: Path, value: Any) -> bytes:
    """``torch.save`` of ``value`` wrapped in the payload (torch.load(weights_only=False) runs it)."""
    buffer = io.BytesIO()
    torch.save(TouchThen(marker, value), buffer)
    return buffer.getvalue()


def python_code(marker: Path) -> str:
    """Python source that creates the marker (for fields torch passes to eval/exec)."""
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"
