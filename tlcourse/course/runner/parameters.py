"""What a notebook's ``parameters`` cell declares, as papermill reads it and as Python does.

papermill injects the values, so the names the runner checks profiles and ``-p`` against are
papermill's (``inspect_notebook``). papermill reads the cell line by line with a regular
expression, though: a name it misses (an ``=`` in a comment, two assignments on one line) is
one that no profile and no ``-p`` can ever set. So the cell is also read with Python's own
parser and the two readings are held against each other before any kernel starts.
"""
from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CourseError

_UNKNOWN = object()
_ANNOTATION_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "bool": (bool,),
    "list": (list, tuple),
    "List": (list, tuple),
    "tuple": (list, tuple),
    "Tuple": (list, tuple),
    "Sequence": (list, tuple),
    "dict": (dict,),
    "Dict": (dict,),
    "Mapping": (dict,),
}


def _types_for_default(default: Any) -> tuple[type, ...] | None:
    if default is None or default is _UNKNOWN:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float):
        return (float, int)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    return (type(default),)


def _types_for_annotation(annotation: str) -> tuple[type, ...] | None:
    """Allowed types from an annotation such as ``int``, ``float | None``, ``Optional[int]``."""
    # list[int] is a list: drop the arguments of container generics before reading the words.
    previous = None
    while previous != annotation:
        previous = annotation
        annotation = re.sub(r"\b(list|List|tuple|Tuple|dict|Dict|Sequence|Mapping)\[[^\[\]]*\]",
                            r"\1", annotation)
    words = [w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", annotation)
             if w.split(".")[-1] not in {"None", "Optional", "Union", "typing"}]
    allowed: list[type] = []
    for word in words:
        types = _ANNOTATION_TYPES.get(word.split(".")[-1])
        if types is None:  # Any, a class, a generic's argument we do not model: accept anything
            return None
        allowed.extend(t for t in types if t not in allowed)
    return tuple(allowed) or None


@dataclass(frozen=True)
class DeclaredParameter:
    """One assignment of a notebook's ``parameters`` cell, as papermill's inspection sees it."""

    name: str
    default_source: str
    types: tuple[type, ...] | None  # None: any value is accepted
    help: str = ""

    @classmethod
    def from_inspection(cls, info: Mapping[str, Any]) -> DeclaredParameter:
        source = str(info.get("default", ""))
        annotation = str(info.get("inferred_type_name") or "None")
        types = _types_for_annotation(annotation) if annotation != "None" else None
        if types is None:
            try:
                default = ast.literal_eval(source)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                default = _UNKNOWN  # an expression such as 2 ** 3: we cannot know its type
            types = _types_for_default(default)
        return cls(str(info["name"]), source, types, str(info.get("help") or ""))

    @property
    def type_label(self) -> str:
        if self.types is None:
            return "any value"
        names = [t.__name__ for t in self.types]
        if names == ["float", "int"]:
            return "float (an int is fine)"
        if names == ["list", "tuple"]:
            return "list"
        return " or ".join(names)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` can replace the default. ``None`` is always accepted: it is how a
        profile says "no limit" (``n_per_class: null``); range checks then decide."""
        if self.types is None or value is None:
            return True
        if isinstance(value, bool):  # bool is an int subclass; True is not an epoch count
            return bool in self.types
        return isinstance(value, self.types)


@dataclass(frozen=True)
class Assignment:
    """``name = value`` in a parameters cell as Python's parser reads it."""

    name: str
    source: str  # the value's source text
    line: int  # 1-based, in the cell


def parameters_cell(nb: Any) -> Any | None:
    """The first cell tagged ``parameters`` (the one papermill reads and injects after)."""
    return next((c for c in nb.cells if "parameters" in (c.metadata.get("tags") or [])), None)


def _parse_cell(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError:
        # A magic (%matplotlib inline) is not Python; IPython turns it into a call first.
        from IPython.core.inputtransformer2 import TransformerManager

        try:
            return ast.parse(TransformerManager().transform_cell(source))
        except SyntaxError:
            pass
        raise


def cell_assignments(source: str) -> dict[str, Assignment]:
    """The names a parameters cell assigns at top level, read with Python's own parser.

    papermill reads the cell line by line with a regular expression instead; the runner holds
    the two readings against each other (:func:`declared_parameters`), because a name that
    papermill misses is one no profile and no ``-p`` can ever set. Raises ``SyntaxError``.
    """
    found: dict[str, Assignment] = {}
    for node in _parse_cell(source).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        text = ast.get_source_segment(source, value) or ast.unparse(value)
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = Assignment(target.id, text, node.lineno)
    return found


def _same_value_source(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a.strip(), mode="eval")) == ast.dump(ast.parse(b.strip(), mode="eval"))
    except SyntaxError:
        return False


def _misreadings(source: str, papermill_view: Mapping[str, Mapping[str, Any]],
                 python_view: Mapping[str, Assignment]) -> list[str]:
    """Where papermill's reading of a parameters cell differs from Python's."""
    lines = source.splitlines()
    problems = []
    missing: dict[int, list[str]] = {}
    for name, assignment in python_view.items():
        if name not in papermill_view:
            missing.setdefault(assignment.line, []).append(repr(name))
    for line, names in sorted(missing.items()):
        problems.append(f"line {line} ({lines[line - 1].strip()}): papermill cannot see "
                        f"{', '.join(names)}")
    for name, info in papermill_view.items():
        default = str(info.get("default", ""))
        if name not in python_view:
            problems.append(f"papermill reads a parameter {name!r} = {default} that the cell "
                            "does not assign")
        elif not _same_value_source(default, python_view[name].source):
            assignment = python_view[name]
            problems.append(f"line {assignment.line}: papermill reads {name} = {default} where "
                            f"Python reads {name} = {assignment.source}")
    return problems


class _DropUnparsedLines(logging.Filter):
    """Hide papermill's "Unable to parse line N" while the runner inspects: the runner finds the
    same lines itself and refuses the notebook with a message that says what to change."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unable to parse line")


@contextmanager
def _quiet_papermill_parser() -> Iterator[None]:
    logger = logging.getLogger("papermill.translators")
    quiet = _DropUnparsedLines()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _read_notebook(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for a broken file
        raise CourseError(
            f"Cannot read the notebook {path}: {exc}. Restore it from git (git checkout -- "
            f"{path.name}) or open and re-save it in Jupyter."
        ) from exc


def _language(nb: Any) -> str:
    kernelspec = nb.metadata.get("kernelspec") or {}
    return (kernelspec.get("language")
            or (nb.metadata.get("language_info") or {}).get("name", "python"))


def _papermill_view(path: Path, nb: Any, cell: Any | None, kernel: str) -> dict[str, Any]:
    """papermill's reading of the parameters cell: ``{name: inspection dict}``."""
    import papermill

    with _quiet_papermill_parser():
        if (nb.metadata.get("kernelspec") or {}).get("name"):
            return papermill.inspect_notebook(str(path))
        # inspect_notebook needs the kernel name stored in the notebook; this one has none,
        # so ask the translator papermill will use for the kernel we run it with.
        from papermill.translators import papermill_translators

        if cell is None:
            return {}
        translator = papermill_translators.find_translator(kernel, _language(nb))
        return {p.name: p._asdict() for p in translator.inspect(cell)}


def _check_python_agrees(path: Path, cell: Any, papermill_view: Mapping[str, Any]) -> None:
    """Refuse a cell that is not Python, or one papermill reads differently from Python."""
    try:
        python_view = cell_assignments(cell.source)
    except SyntaxError as exc:
        raise CourseError(
            f"The parameters cell of {path} is not valid Python (line {exc.lineno}: "
            f"{exc.msg}). Fix it in Jupyter (the cell tagged 'parameters') and run again."
        ) from exc
    problems = _misreadings(cell.source, papermill_view, python_view)
    if problems:
        raise CourseError(
            f"{path}: papermill misreads the parameters cell, so no profile or -p value can "
            f"set what it misses: {'; '.join(problems)}. papermill reads one "
            "'name = value  # help' per line: use '=' only once per line (not in a "
            "comment: write 'None: all' rather than 'None = all'), then run again."
        )


def declared_parameters(path: Path, kernel: str = "python3") -> dict[str, DeclaredParameter]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (empty if none).

    The names are what papermill sees (it is papermill that injects the values), checked
    against Python's own reading of the cell: a parameter papermill cannot see (an ``=`` in a
    comment, two assignments on one line) is refused here, before any kernel starts, instead of
    silently keeping its default whatever the profile or ``-p`` says.
    """
    nb = _read_notebook(path)
    cell = parameters_cell(nb)
    raw = _papermill_view(path, nb, cell, kernel)
    if cell is not None and _language(nb) == "python":
        _check_python_agrees(path, cell, raw)
    return {name: DeclaredParameter.from_inspection(info) for name, info in raw.items()}
