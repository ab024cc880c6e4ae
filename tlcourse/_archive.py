"""Which archive members may be extracted: one set of rules for zips (downloads) and tars (packs).

Archives come from others (a download, a pack on a USB stick), so a member's name and type are
untrusted. A name that is absolute, climbs out with ``..``, carries a drive letter or a
backslash (a separator on Windows, an ordinary character here) could put a file outside the
folder it is extracted into; a link could point anywhere. Callers refuse the whole archive on
the first such member, each with its own error type and wording; the rules live here once.
"""
from __future__ import annotations

import re
import stat
import tarfile
import zipfile

__all__ = ["FILE", "FOLDER", "member_kind", "unsafe_name"]

FILE = "a plain file"
FOLDER = "a folder"
_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name(name: str) -> str | None:
    """Why the member ``name`` may not be extracted, or None when it is a plain relative path.

    Refused: an empty name, a NUL character, a backslash, an absolute path, a drive letter,
    and any ``..``, ``.`` or empty component (``a//b``). A zip marks a folder with one trailing
    ``/``; the caller strips it before asking.
    """
    if not name:
        return "an empty name"
    if "\x00" in name:
        return "a NUL character"
    if "\\" in name:
        return "a backslash"
    if name.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(name):
        return "a drive letter"
    parts = name.split("/")
    if ".." in parts:
        return "'..'"
    if any(part in ("", ".") for part in parts):
        return "an empty or '.' path component"
    return None


def member_kind(info: zipfile.ZipInfo | tarfile.TarInfo) -> str:
    """What a member is: :data:`FILE`, :data:`FOLDER`, a symbolic or hard link, or a special file.

    A zip records a file type only when made on Unix; none (Windows and DOS tools, or
    ``ZipFile.writestr`` with a name) means a plain file or, with a trailing ``/``, a folder.
    """
    if isinstance(info, tarfile.TarInfo):
        if info.issym():
            return "a symbolic link"
        if info.islnk():
            return "a hard link"
        return FILE if info.isreg() else FOLDER if info.isdir() else "a special file (device or pipe)"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if info.is_dir() or stat.S_ISDIR(mode):
        return FOLDER
    return FILE if stat.S_IFMT(mode) in (0, stat.S_IFREG) else "a special file (device or pipe)"
