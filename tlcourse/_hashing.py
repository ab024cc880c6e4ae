"""The one sha256-of-a-file helper: weight files, dataset files, downloads and packs use it.

Files are read in 1 MiB blocks, so a large archive or weight file is hashed without being
held in memory.
"""
from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hexadecimal sha256 of the file at ``path`` (as ``sha256sum`` prints it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
