"""The one way the course reads YAML: safe loading, and a key written twice is refused.

PyYAML's ``safe_load`` keeps the *last* of two equal keys without a word, so a profile with
``epochs: 1`` under a later ``epochs: 50`` (or a bank question with two ``answer:`` lines)
silently runs with the value the author did not look at last. Every YAML file the course reads
goes through :class:`SafeLoader` (or a subclass that adds its own value rules), and
:func:`load_file` turns any problem into one message naming the file, the key and the lines.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import CourseError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice; ``key``, ``line`` and ``first_line`` say where."""

    def __init__(self, key: Any, mark: yaml.Mark, first: yaml.Mark) -> None:
        self.key, self.line, self.first_line = key, mark.line + 1, first.line + 1
        super().__init__(
            None, None,
            f"the key {key!r} appears twice (line {self.first_line} and line {self.line})",
            mark,
        )


class SafeLoader(yaml.SafeLoader):
    """PyYAML's ``SafeLoader`` (plain data only, nothing executes) that refuses duplicate keys.

    Subclass it to change how scalars are read; the duplicate check stays. A key given by a
    merge (``<<: *defaults``) may be overridden, as YAML intends: only the keys written in the
    mapping itself are compared.
    """

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicates(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark)
        except TypeError:  # an unhashable key: construct_mapping refuses it with its own words
            continue
        if first is not key_node.start_mark:
            raise DuplicateKeyError(key, key_node.start_mark, first)


def load_text(text: str, loader: type[SafeLoader] = SafeLoader) -> Any:
    """Parse YAML text with ``loader``; raises ``yaml.YAMLError`` (a duplicate key:
    :class:`DuplicateKeyError`)."""
    if not (isinstance(loader, type) and issubclass(loader, SafeLoader)):
        raise TypeError(f"loader must be tlcourse._yaml.SafeLoader or a subclass, got {loader!r}")
    return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass, checked above


def load_file(
    path: str | os.PathLike[str],
    loader: type[SafeLoader] = SafeLoader,
    error: type[CourseError] = CourseError,
) -> Any:
    """Read the YAML file at ``path``; any problem is one ``error`` naming the file and the fix.

    ``error`` lets a caller keep its own subclass of :class:`CourseError` (a question bank
    raises ``BankError``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"Cannot read {path}: {getattr(exc, 'strerror', None) or exc}.") from exc
    try:
        return load_text(text, loader)
    except DuplicateKeyError as exc:
        raise error(
            f"{path}, line {exc.line}: {exc.problem}. YAML would silently keep only the last "
            f"one; delete one of the two {exc.key!r} lines and run again."
        ) from exc
    except yaml.YAMLError as exc:
        raise error(f"{path} is not valid YAML: {exc}. Fix the file and run again.") from exc
