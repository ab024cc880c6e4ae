"""Parameter values as a Python user means them: ``-p KEY=VALUE`` and the profiles file.

Plain YAML 1.1 reads ``1e-4`` as a *string* (it wants ``1.0e-4``), ``no`` as ``False``,
``010`` as 8 and ``2024-01-01`` as a date. Learners type Python, so here ``1e-4`` is a float,
only ``true``/``false`` are booleans, integers are decimal, dates stay strings and ``None``
means ``None`` (as does YAML's ``null`` / ``~``). A key written twice is refused
(:mod:`tlcourse._yaml`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ... import _yaml
from ...errors import InvalidParameterError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ValueLoader(_yaml.SafeLoader):
    """The course's safe YAML loader with the value rules above."""


_DROPPED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
ValueLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
            |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|None|)$"), ["~", "n", "N", ""]
)


def parse_value(text: str) -> Any:
    """Parse one ``-p`` value: ``3`` -> 3, ``1e-4`` -> 0.0001, ``abc`` -> "abc", ``[1, 2]`` -> list."""
    try:
        return _yaml.load_text(text, ValueLoader)
    except yaml.YAMLError as exc:
        raise InvalidParameterError(
            f"Cannot read the value {text!r}: {str(exc).splitlines()[0]}. Values are YAML, "
            "e.g. -p epochs=3, -p lr=1e-4, -p backbone=mobilenet_v2, -p sizes='[64, 128]'."
        ) from exc


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split a ``KEY=VALUE`` command-line override and parse the value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _IDENTIFIER.match(key):
        raise InvalidParameterError(
            f"Cannot read the parameter override {text!r}: expected KEY=VALUE with KEY a "
            "Python name, e.g. -p epochs=3 or -p lr=1e-4."
        )
    return key, parse_value(raw.strip())


def load_yaml_file(path: Path) -> Any:
    """Read a YAML file with the same value rules as ``-p`` (a duplicate key is refused)."""
    return _yaml.load_file(path, ValueLoader)
