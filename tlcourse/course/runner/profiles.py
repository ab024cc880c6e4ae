"""``notebooks/profiles.yaml``: named sets of parameter values (smoke, classroom, full).

The file's structure is checked here, when it is read; whether each parameter name and value
suits the notebooks is checked per run (:mod:`.plan`), because that depends on the notebooks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._checks import is_int
from ...errors import CourseError
from .values import load_yaml_file

PROFILES_FILE = "profiles.yaml"
_PROFILE_KEYS = {"description", "timeout", "defaults", "notebooks"}


@dataclass(frozen=True)
class Profile:
    """A named set of parameter values (see the comment at the top of profiles.yaml)."""

    name: str
    description: str = ""
    timeout: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    notebooks: tuple[tuple[str, dict[str, Any]], ...] = ()


def _mapping(value: Any, where: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CourseError(
            f"{path}: {where} must be a mapping of names to values, got {value!r}. "
            "See the schema in the comment at the top of the file."
        )
    return dict(value)


def _timeout(body: dict[str, Any], name: str, path: Path) -> int | None:
    timeout = body.get("timeout")
    if timeout is not None and (not is_int(timeout) or timeout <= 0):
        raise CourseError(
            f"{path}: profile {name!r} has timeout {timeout!r}; use a whole number of "
            "seconds per cell, or null for no limit."
        )
    return timeout


def _profile(name: str, value: Any, path: Path) -> Profile:
    body = _mapping(value, f"profile {name!r}", path)
    extra = sorted(set(body) - _PROFILE_KEYS)
    if extra:
        raise CourseError(
            f"{path}: profile {name!r} has unknown key(s) {', '.join(map(repr, extra))}. "
            f"A profile has only: {', '.join(sorted(_PROFILE_KEYS))}; parameter values go "
            "under 'defaults:' or 'notebooks:'."
        )
    timeout = _timeout(body, name, path)
    globs = _mapping(body.get("notebooks"), f"profile {name!r} notebooks", path)
    return Profile(
        name=name,
        description=str(body.get("description") or ""),
        timeout=timeout,
        defaults=_mapping(body.get("defaults"), f"profile {name!r} defaults", path),
        notebooks=tuple(
            (str(glob), _mapping(values, f"profile {name!r}, notebooks {glob!r}", path))
            for glob, values in globs.items()
        ),
    )


def load_profiles(path: str | os.PathLike[str]) -> dict[str, Profile]:
    """Read and structurally check a profiles file (parameter names are checked per run).

    A key written twice anywhere in the file (two ``smoke:`` profiles, two ``epochs:`` in one
    ``defaults:``) is refused: YAML would silently keep the last one.
    """
    path = Path(path)
    if not path.is_file():
        raise CourseError(
            f"No profiles file at {path}. The course ships notebooks/{PROFILES_FILE}; restore it "
            "from git, or pass the right course root (TLCOURSE_ROOT)."
        )
    data = _mapping(load_yaml_file(path), "the top level", path)
    profiles = {name: _profile(name, body, path) for name, body in data.items()}
    if not profiles:
        raise CourseError(f"{path} defines no profiles; restore it from git.")
    return profiles
