"""Opening the photos a model is asked about: decoded safely, named when they cannot be.

Photos come from anywhere: phones, scanners, a classmate's folder. :func:`open_image` turns
each failure (a truncated copy, a text file, a decompression bomb, memory running out) into a
:class:`~tlcourse.errors.CourseError` that names the file, and decodes very large JPEGs at a
reduced scale, which the model's resize would throw away anyway. :func:`gather_images` turns
the paths given to ``tlcourse predict`` (files and folders) into the list of files to open,
without ever opening a pipe or a device.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from ..data.datasets import IMAGE_EXTENSIONS
from ..errors import CourseError, InvalidParameterError

#: A JPEG of more pixels than this is decoded at a reduced scale (:func:`open_image`); smaller
#: ones (a 12 MP phone photo, every photo of the course's datasets) are decoded in full.
DRAFT_ABOVE_PIXELS = 16_000_000
#: The reduced scale keeps at least this many times the preprocessing's resize size per side.
DRAFT_MARGIN = 4

ImageLike = Any  # a PIL image, a path (str / os.PathLike) or a uint8 tensor (3, H, W)


def as_list(images: Any) -> list[Any]:
    """One image or many -> a list (a single path, PIL image or (3, H, W) tensor is a list of one)."""
    if isinstance(images, (str, os.PathLike, Image.Image)) or (
        isinstance(images, torch.Tensor) and images.ndim == 3
    ):
        return [images]
    if isinstance(images, torch.Tensor):
        return list(images)
    try:
        return list(images)
    except TypeError:
        raise InvalidParameterError(
            f"images must be a list of PIL images or image paths, got {type(images).__name__}."
        ) from None


def open_image(path: str | os.PathLike[str], min_size: int | None = None, *, mode: str | None = "RGB") -> Image.Image:
    """Open and fully decode an image file as RGB; a :class:`CourseError` says why one cannot be.

    ``mode=None`` returns the image in the mode the file stores (``"L"``, ``"RGBA"``,
    ``"CMYK"``, ...): what the photo-folder checks report before anything converts it.

    The decode is forced here (Pillow otherwise reads only the header), so a truncated JPEG
    fails with its name instead of later, mid-batch.

    ``min_size`` (the preprocessing's ``resize_size``) lets a JPEG of more than
    :data:`DRAFT_ABOVE_PIXELS` be decoded at 1/2, 1/4 or 1/8 scale inside the JPEG decoder
    (Pillow's ``Image.draft``), at the smallest of those scales that keeps both sides at least
    :data:`DRAFT_MARGIN` times ``min_size``: an 8000 x 8000 scan then takes 3 to 12 MB of
    pixels instead of 192 MB (and as much again for the RGB copy), and the antialiased resize
    of the preprocessing still makes the last step. The reduced decode is not the same
    pixels, and a model unsure between two classes can tip, so ordinary photos are decoded in
    full: their predictions are exactly those of a full decode. Other formats have no reduced
    decode and are read in full.

    Pillow refuses to decode an image of more than about 179 megapixels (a *decompression
    bomb*: a small file that expands to gigabytes in memory); that, and running out of memory,
    is reported as a :class:`CourseError` naming the file, like any other unreadable image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            if min_size and img.width * img.height > DRAFT_ABOVE_PIXELS:
                img.draft("RGB", (DRAFT_MARGIN * min_size, DRAFT_MARGIN * min_size))
            img.load()
            return img.convert(mode) if mode else img.copy()
    except FileNotFoundError:
        raise CourseError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise CourseError(f"{path} is a folder, not an image file.") from None
    except UnidentifiedImageError:
        raise CourseError(
            f"{path} is not an image file Pillow can read (extension {path.suffix or 'none'}). "
            f"Give JPEG/PNG images ({', '.join(IMAGE_EXTENSIONS)})."
        ) from None
    except (Image.DecompressionBombError, MemoryError) as exc:
        why = str(exc) if isinstance(exc, Image.DecompressionBombError) else "Out of memory while decoding it."
        raise CourseError(
            f"{path}: not decoded, too large: {why} A file that expands to this many pixels is a "
            "decompression bomb or a huge scan; downscale it (e.g. to 2000 px on its long side) "
            "and classify the copy."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CourseError(
            f"{path}: the image could not be decoded ({exc}). The file is damaged or truncated "
            "(an interrupted copy or download); replace it."
        ) from None


def as_image(item: Any, min_size: int | None = None) -> Any:
    """A PIL image or uint8 tensor the preprocessing takes; paths are opened with
    :func:`open_image` (``min_size``: see there)."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (str, os.PathLike)):
        return open_image(item, min_size)
    if isinstance(item, torch.Tensor) and item.dtype == torch.uint8 and item.ndim == 3 and item.shape[0] == 3:
        return item
    raise InvalidParameterError(
        f"Cannot predict on a {type(item).__name__}: give PIL images, image paths, or uint8 tensors (3, H, W)."
    )


def gather_images(paths: Sequence[str]) -> tuple[list[Path], list[str], list[str]]:
    """Image files to classify, problems (errors) and skipped files (notes), in the given order.

    A folder is walked recursively and keeps the files with an image extension; its other
    files are named as skipped. A file given explicitly is always tried: if it is not an
    image, decoding says so and counts as a failure. A path that is neither a file nor a
    folder (a named pipe, a device) is a problem, never opened: reading a pipe could wait
    forever, and a device could stream without end.
    """
    files: list[Path] = []
    problems: list[str] = []
    skipped: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            images = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS]
            skipped += [str(p) for p in found if p.suffix.lower() not in IMAGE_EXTENSIONS]
            if not images:
                problems.append(f"{path}: no image files in this folder ({', '.join(IMAGE_EXTENSIONS)}).")
            files += images
        elif path.is_file():
            files.append(path)
        elif path.exists():
            problems.append(f"{path}: not a regular file or a folder (a pipe, socket or device); "
                            "give image files or folders of them.")
        else:
            problems.append(f"{path}: no such file or folder.")
    return files, problems, skipped


__all__ = [
    "DRAFT_ABOVE_PIXELS",
    "DRAFT_MARGIN",
    "IMAGE_EXTENSIONS",
    "ImageLike",
    "as_image",
    "as_list",
    "gather_images",
    "open_image",
]
