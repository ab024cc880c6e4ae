"""``tlcourse predict --model FILE PATH...``: an export's predictions for photos, as CSV.

The command reads the model file's metadata first, so a wrong file is refused at once (exit
2), then classifies every photo it can open and names, on stderr, each one it cannot (exit 1):
one bad photo in a folder never costs the answers for the others.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..csvsafe import SafeWriter
from ..errors import CourseError
from .images import gather_images, open_image
from .load import PREDICT_BATCH, ExportedModel, check_top_k, load_exported, read_metadata, recorded_class_names
from .onnx_load import is_onnx_path, load_onnx, read_onnx_metadata

#: Exit status of ``tlcourse predict`` when its stdout is closed early (128 + SIGPIPE).
STATUS_BROKEN_PIPE = 141


def _fmt(p: float) -> str:
    return f"{p:.4f}" if math.isfinite(p) else str(p)


def _stdout_closed() -> int:
    """The reader of stdout went away (``tlcourse predict ... | head``): stop quietly.

    Nobody reads the remaining predictions, so they are not computed. Pointing stdout at
    ``os.devnull`` keeps Python from a second ``BrokenPipeError`` when it flushes stdout at
    exit. The status is 141 (128 + SIGPIPE), what a shell reports for ``cat`` or ``grep`` in
    the same place, so ``set -o pipefail`` scripts see the usual value.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return STATUS_BROKEN_PIPE


def _readers(path: str) -> tuple[Callable[[str], dict[str, Any]], Callable[[str], ExportedModel]]:
    """How to read ``path``: a ``.onnx`` file runs on ONNX Runtime, anything else is a ``torch.export`` file."""
    if is_onnx_path(path):
        return read_onnx_metadata, load_onnx
    return read_metadata, load_exported


def cli_predict(args: argparse.Namespace) -> int:
    """``tlcourse predict --model FILE [--top-k K] PATH...``: CSV predictions on stdout.

    ``FILE`` is a ``torch.export`` file (:func:`~tlcourse.deploy.export_model`) or, named
    ``*.onnx``, an ONNX file (:func:`~tlcourse.deploy.export_onnx`, run with ONNX Runtime);
    the CSV is the same for both.

    Columns ``path,predicted_class,probability`` (with ``--top-k K > 1``:
    ``path,class_1,prob_1,...,class_K,prob_K``); text cells that a spreadsheet would run as a
    formula (a photo named ``=cmd|...``) get a leading ``'`` (:mod:`tlcourse.csvsafe`).
    Unreadable images (damaged, not images, decompression bombs) and paths that are not images
    are reported on stderr, one line each, the other images are still classified, and the exit
    status is 1. A model file of the wrong kind or a bad ``--top-k`` stops at once (status 2).
    Large JPEGs are decoded at a reduced scale (:func:`tlcourse.deploy.images.open_image`). When stdout is closed
    early (``| head``), the command stops without a traceback, status 141.
    """
    read, load = _readers(args.model)
    metadata = read(args.model)  # fast refusal of a wrong file before the heavy load
    k = check_top_k(args.top_k, len(recorded_class_names(metadata, Path(args.model))))
    files, problems, skipped = gather_images(args.paths)
    for note in skipped:
        print(f"tlcourse predict: skipped {note} (not an image file)", file=sys.stderr)
    exported = load(args.model) if files else None
    min_size = exported.preprocessing.resize_size if exported is not None else None
    writer = SafeWriter(sys.stdout)
    failed = len(problems)
    try:
        if k == 1:
            writer.writerow(["path", "predicted_class", "probability"])
        else:
            writer.writerow(["path"] + [c for i in range(1, k + 1) for c in (f"class_{i}", f"prob_{i}")])
        for message in problems:
            print(f"tlcourse predict: {message}", file=sys.stderr)
        for start in range(0, len(files), PREDICT_BATCH):
            chunk, images = [], []
            for path in files[start : start + PREDICT_BATCH]:
                try:
                    images.append(open_image(path, min_size))
                    chunk.append(path)
                except CourseError as exc:
                    failed += 1
                    print(f"tlcourse predict: {exc}", file=sys.stderr)
            if not images:
                continue
            assert exported is not None
            for path, top in zip(chunk, exported.predict(images, top_k=k)):
                if k == 1:
                    writer.writerow([str(path), top[0][0], _fmt(top[0][1])])
                else:
                    writer.writerow([str(path)] + [x for name, p in top for x in (name, _fmt(p))])
            sys.stdout.flush()
        sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_closed()
    if failed:
        print(f"tlcourse predict: {failed} input(s) could not be classified (see above).", file=sys.stderr)
    return 1 if failed else 0


__all__ = ["STATUS_BROKEN_PIPE", "cli_predict"]
