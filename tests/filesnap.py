"""File-tree fingerprints for the tests that promise "nothing was lost or overwritten"
(tests/course/test_pack.py, tests/data/, ...): take one before, one after, compare."""
from __future__ import annotations

import hashlib
import stat
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots`` -> sha256 of its bytes ("dir" for folders)."""
    out: dict[str, str] = {}
    for root in roots:
        if root.exists():
            for path in sorted(root.rglob("*")):
                out[str(path)] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def mode_of(path: Path) -> int:
    """The permission bits of ``path`` (``0o644`` for a file others may read)."""
    return stat.S_IMODE(path.stat().st_mode)


def course_sources() -> dict[str, str]:
    """The sources a smoke run of lesson 00 reads, and the names of any run outputs in
    notebooks/: a run must write neither there (only lesson 00's bytes are compared, so that
    an author editing another lesson while the tests run does not fail them)."""
    folder = REPO / "notebooks"
    files = (folder / "00_golden_rule.ipynb", folder / "profiles.yaml")
    written = sorted(p.name for p in folder.iterdir()
                     if p.name in ("summary.json", "report.md") or p.name.endswith(".results.json"))
    return {**{str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}, "run outputs": str(written)}
