"""sha256 of files and of bytes in passing: the one place the course computes a checksum.

Every file the course trusts (dataset files, ImageNet weights, pack members) is checked against
a recorded sha256. Files can be large (a classroom pack holds gigabytes), so nothing here reads
a whole file into memory: :func:`sha256_file` streams it, and :class:`HashingReader` hashes the
bytes that pass through while they are copied somewhere else (one read instead of two).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["CHUNK", "HashingReader", "sha256_file"]

CHUNK = 1 << 20  # bytes per read: large enough to be fast, small enough to stay out of memory


class HashingReader:
    """A read-only file wrapper that hashes, counts and reports the bytes read through it.

    ``tarfile.addfile`` and ``shutil.copyfileobj`` pull from it like from a file; afterwards
    :meth:`hexdigest` is the sha256 of exactly what they copied. ``on_block(n)`` is called
    with each block's length (a progress bar's ``update``).
    """

    def __init__(self, raw: BinaryIO, on_block: Callable[[int], object] | None = None) -> None:
        self.raw = raw
        self.count = 0
        self._digest = hashlib.sha256()
        self._on_block = on_block

    def read(self, n: int = -1) -> bytes:
        block = self.raw.read(n)
        self._digest.update(block)
        self.count += len(block)
        if self._on_block is not None:
            self._on_block(len(block))
        return block

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of the file at ``path`` (lowercase hex, as ``sha256sum`` prints it)."""
    with open(path, "rb") as fh:
        reader = HashingReader(fh)
        while reader.read(CHUNK):
            pass
    return reader.hexdigest()
