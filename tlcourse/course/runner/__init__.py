"""``tlcourse run``: execute the course notebooks with papermill and report what they found.

The runner is how CI checks that every lesson still runs (``--profile smoke``), how a teacher
checks a classroom machine before the lesson (``--profile classroom``) and how the GPU-sized
results are reproduced (``--profile full``). It

1. finds the course root (the directory holding ``notebooks/``; ``TLCOURSE_ROOT`` overrides),
2. reads every notebook's parameters cell with papermill's ``inspect_notebook`` and checks the
   profile's values and each ``-p KEY=VALUE`` against it *before any kernel starts*: an
   unknown name or a value of the wrong type fails in a second, not after an hour of training
   (papermill itself would only warn and inject the typo),
3. executes the notebooks in numeric order into a fresh output directory (the sources are
   never written), each with ``cwd`` = its folder in the output directory (so files a notebook
   writes, such as an exported model, land in the run, never in the course's source tree) and
   the environment variables ``TLCOURSE_HEADLESS=1``, ``TLCOURSE_RESULTS=<out>/<stem>.results.json``
   and ``TLCOURSE_BANKS`` (the course's question banks, found from the source tree),
4. keeps going after a failure, and writes ``summary.json`` (machine-readable) and
   ``report.md`` (for people) from what the notebooks recorded with :mod:`tlcourse.results`,
5. on Ctrl-C kills the running notebook's kernel, writes both files for what finished (that
   notebook marked "interrupted") and prints the command that finishes the run:
   ``tlcourse run --resume DIR`` reruns only the notebooks that are not ok, with the settings
   and parameter values ``summary.json`` recorded when the run started.
"""
from __future__ import annotations

import ast
import contextlib
import difflib
import errno
import fnmatch
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from ...atomic import write_text as atomic_write_text
from ...errors import CourseError, InvalidParameterError, unknown_name
from ..params import COMMON_PARAMETERS, parameter_problems
from ..results import (
    HEADLESS_ENV,
    RESULTS_ENV,
    RESULTS_SUFFIX,
    read_results,
    write_json_atomic,
)

ROOT_ENV = "TLCOURSE_ROOT"
LESSONS_DIR = "notebooks"
EXERCISES_DIR = "exercises"
PROFILES_FILE = "profiles.yaml"
_NOTEBOOK_NAME = re.compile(r"^(\d+)_.*\.ipynb$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------------------------
# Values: YAML the way a Python user means it
# --------------------------------------------------------------------------------------------
class _ValueLoader(yaml.SafeLoader):
    """YAML with the surprises removed for parameter values.

    Plain YAML 1.1 reads ``1e-4`` as a *string* (it wants ``1.0e-4``), ``no`` as ``False``,
    ``010`` as 8 and ``2024-01-01`` as a date. Learners type Python, so here ``1e-4`` is a
    float, only ``true``/``false`` are booleans, integers are decimal, dates stay strings and
    ``None`` means ``None`` (as does YAML's ``null`` / ``~``).
    """


_DROPPED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_ValueLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
_ValueLoader.add_implicit_resolver(
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
_ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|None|)$"), ["~", "n", "N", ""]
)


def parse_value(text: str) -> Any:
    """Parse one ``-p`` value: ``3`` -> 3, ``1e-4`` -> 0.0001, ``abc`` -> "abc", ``[1, 2]`` -> list."""
    try:
        return yaml.load(text, Loader=_ValueLoader)
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
    """Read a YAML file with the same value rules as ``-p``."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_ValueLoader)
    except yaml.YAMLError as exc:
        raise CourseError(f"{path} is not valid YAML: {exc}. Fix the file and run again.") from exc


# --------------------------------------------------------------------------------------------
# Declared parameters
# --------------------------------------------------------------------------------------------
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


def declared_parameters(path: Path, kernel: str = "python3") -> dict[str, DeclaredParameter]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (empty if none).

    The names are what papermill sees (it is papermill that injects the values), checked
    against Python's own reading of the cell: a parameter papermill cannot see (an ``=`` in a
    comment, two assignments on one line) is refused here, before any kernel starts, instead of
    silently keeping its default whatever the profile or ``-p`` says.
    """
    import nbformat
    import papermill

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for a broken file
        raise CourseError(
            f"Cannot read the notebook {path}: {exc}. Restore it from git (git checkout -- "
            f"{path.name}) or open and re-save it in Jupyter."
        ) from exc
    cell = parameters_cell(nb)
    kernelspec = nb.metadata.get("kernelspec") or {}
    language = (kernelspec.get("language")
                or (nb.metadata.get("language_info") or {}).get("name", "python"))
    with _quiet_papermill_parser():
        if kernelspec.get("name"):
            raw = papermill.inspect_notebook(str(path))
        else:
            # inspect_notebook needs the kernel name stored in the notebook; this one has none,
            # so ask the translator papermill will use for the kernel we run it with.
            from papermill.translators import papermill_translators

            raw = {}
            if cell is not None:
                translator = papermill_translators.find_translator(kernel, language)
                raw = {p.name: p._asdict() for p in translator.inspect(cell)}
    if cell is not None and language == "python":
        try:
            python_view = cell_assignments(cell.source)
        except SyntaxError as exc:
            raise CourseError(
                f"The parameters cell of {path} is not valid Python (line {exc.lineno}: "
                f"{exc.msg}). Fix it in Jupyter (the cell tagged 'parameters') and run again."
            ) from exc
        problems = _misreadings(cell.source, raw, python_view)
        if problems:
            raise CourseError(
                f"{path}: papermill misreads the parameters cell, so no profile or -p value can "
                f"set what it misses: {'; '.join(problems)}. papermill reads one "
                "'name = value  # help' per line: use '=' only once per line (not in a "
                "comment: write 'None: all' rather than 'None = all'), then run again."
            )
    return {name: DeclaredParameter.from_inspection(info) for name, info in raw.items()}


# --------------------------------------------------------------------------------------------
# Course layout
# --------------------------------------------------------------------------------------------
def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The course root: ``TLCOURSE_ROOT`` if set, else the first of ``start`` (default: the
    current directory) and its parents that holds a ``notebooks/`` directory."""
    value = os.environ.get(ROOT_ENV)
    if value:
        root = Path(value).expanduser().resolve()
        if not (root / LESSONS_DIR).is_dir():
            raise CourseError(
                f"{ROOT_ENV}={value} has no {LESSONS_DIR}/ directory. Point {ROOT_ENV} at the "
                "course folder (the one holding notebooks/ and exercises/) or unset it."
            )
        return root
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / LESSONS_DIR).is_dir():
            return directory
    raise CourseError(
        f"No course found: neither {here} nor any parent holds a {LESSONS_DIR}/ directory. "
        f"cd into the course folder, or set {ROOT_ENV}=/path/to/the/course."
    )


def numbered_notebooks(directory: Path) -> list[Path]:
    """``NN_*.ipynb`` files of a directory in numeric order (``2_`` before ``10_``)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_file() and _NOTEBOOK_NAME.match(p.name)]
    return sorted(found, key=lambda p: (int(_NOTEBOOK_NAME.match(p.name)[1]), p.name))


@dataclass
class CourseNotebook:
    """A notebook of the course and what the runner will do with it."""

    path: Path
    label: str  # how reports name it: "03_x.ipynb", or "exercises/03_x.ipynb"
    relpath: str  # path from the course root, for profile globs such as "exercises/03_*"
    exercise: bool
    declared: dict[str, DeclaredParameter]
    parameters: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # parameter -> where its value came from

    def matches(self, pattern: str) -> bool:
        """Glob match on the file name, its stem, its label or its path from the root."""
        return any(
            fnmatch.fnmatchcase(candidate, pattern)
            for candidate in (self.path.name, self.path.stem, self.label, self.relpath)
        )

    def output_in(self, out: Path) -> Path:
        return out / (EXERCISES_DIR if self.exercise else "") / self.path.name

    def results_in(self, out: Path) -> Path:
        return self.output_in(out).with_name(self.path.stem + RESULTS_SUFFIX)


def _course_notebooks(root: Path, directory: Path, exercise: bool, kernel: str
                      ) -> list[CourseNotebook]:
    notebooks = []
    for path in numbered_notebooks(directory):
        try:
            relpath = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            relpath = path.name
        label = f"{EXERCISES_DIR}/{path.name}" if exercise else path.name
        notebooks.append(
            CourseNotebook(path, label, relpath, exercise, declared_parameters(path, kernel))
        )
    return notebooks


def _selected(notebooks: list[CourseNotebook], only: str | None) -> list[CourseNotebook]:
    """``--only``: comma-separated substrings of the label, or globs (``*``, ``?``, ``[``)."""
    if not only:
        return notebooks
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = []
    for nb in notebooks:
        for pattern in patterns:
            is_glob = any(ch in pattern for ch in "*?[")
            if (is_glob and nb.matches(pattern)) or (not is_glob and pattern in nb.label):
                chosen.append(nb)
                break
    if not chosen:
        listing = ", ".join(nb.label for nb in notebooks)
        raise CourseError(
            f"--only {only!r} matches no notebook. Notebooks: {listing}. Give part of a name "
            "(--only 03), several separated by commas (--only 03,05) or a glob (--only '0[3-5]_*')."
        )
    return chosen


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """A named set of parameter values (see the comment at the top of profiles.yaml)."""

    name: str
    description: str = ""
    timeout: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    notebooks: tuple[tuple[str, dict[str, Any]], ...] = ()


_PROFILE_KEYS = {"description", "timeout", "defaults", "notebooks"}


def _mapping(value: Any, where: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CourseError(
            f"{path}: {where} must be a mapping of names to values, got {value!r}. "
            "See the schema in the comment at the top of the file."
        )
    return dict(value)


def load_profiles(path: str | os.PathLike[str]) -> dict[str, Profile]:
    """Read and structurally check a profiles file (parameter names are checked per run)."""
    path = Path(path)
    if not path.is_file():
        raise CourseError(
            f"No profiles file at {path}. The course ships notebooks/{PROFILES_FILE}; restore it "
            "from git, or pass the right course root (TLCOURSE_ROOT)."
        )
    data = _mapping(load_yaml_file(path), "the top level", path)
    profiles = {}
    for name, body in data.items():
        body = _mapping(body, f"profile {name!r}", path)
        extra = sorted(set(body) - _PROFILE_KEYS)
        if extra:
            raise CourseError(
                f"{path}: profile {name!r} has unknown key(s) {', '.join(map(repr, extra))}. "
                f"A profile has only: {', '.join(sorted(_PROFILE_KEYS))}; parameter values go "
                "under 'defaults:' or 'notebooks:'."
            )
        timeout = body.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0
        ):
            raise CourseError(
                f"{path}: profile {name!r} has timeout {timeout!r}; use a whole number of "
                "seconds per cell, or null for no limit."
            )
        overrides = tuple(
            (str(glob), _mapping(values, f"profile {name!r}, notebooks {glob!r}", path))
            for glob, values in _mapping(body.get("notebooks"), f"profile {name!r} notebooks",
                                         path).items()
        )
        profiles[name] = Profile(
            name=name,
            description=str(body.get("description") or ""),
            timeout=timeout,
            defaults=_mapping(body.get("defaults"), f"profile {name!r} defaults", path),
            notebooks=overrides,
        )
    if not profiles:
        raise CourseError(f"{path} defines no profiles; restore it from git.")
    return profiles


# --------------------------------------------------------------------------------------------
# Planning: every check that can fail before a kernel starts
# --------------------------------------------------------------------------------------------
def _valid_list(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "(none: no notebook has a cell tagged 'parameters')"


def _did_you_mean(name: str, names: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def plan_run(
    course: list[CourseNotebook],
    selected: list[CourseNotebook],
    profile: Profile,
    overrides: Mapping[str, Any],
    profiles_path: Path | str = PROFILES_FILE,
) -> None:
    """Fill each selected notebook's ``parameters`` or raise listing every problem found.

    Names are checked against the whole course for profile values (a profile serves every
    ``--only`` selection, so a typo there is a typo whatever is selected) and against the
    selected notebooks for ``-p`` overrides (passing a name that none of the notebooks being
    run declares does nothing, which is never what was meant).
    """
    course_names = set(COMMON_PARAMETERS).union(*(nb.declared for nb in course))
    where = f"profile {profile.name!r} in {profiles_path}"
    for name in profile.defaults:
        if name not in course_names:
            raise InvalidParameterError(
                f"{where} sets {name!r} under 'defaults:', but no notebook declares it and it is "
                f"not a common parameter.{_did_you_mean(name, course_names)} Valid parameters: "
                f"{_valid_list(course_names)}."
            )
    for glob, values in profile.notebooks:
        matched = [nb for nb in course if nb.matches(glob)]
        if not matched:
            raise CourseError(
                f"{where}: 'notebooks:' entry {glob!r} matches no notebook. Notebooks: "
                f"{', '.join(nb.label for nb in course)}."
            )
        declared = set().union(*(nb.declared for nb in matched))
        for name in values:
            if name not in declared:
                raise InvalidParameterError(
                    f"{where}: 'notebooks:' entry {glob!r} sets {name!r}, which none of "
                    f"{', '.join(nb.label for nb in matched)} declares."
                    f"{_did_you_mean(name, declared)} Valid parameters there: "
                    f"{_valid_list(declared)}."
                )
    selected_names = set().union(*(nb.declared for nb in selected))
    for name in overrides:
        if name not in selected_names:
            raise InvalidParameterError(
                f"-p {name}=... : no selected notebook declares a parameter {name!r}."
                f"{_did_you_mean(name, selected_names)} Valid parameters: "
                f"{_valid_list(selected_names)}."
            )

    problems = []
    for nb in selected:
        nb.parameters, nb.sources = {}, {}

        def put(name: str, value: Any, source: str, nb: CourseNotebook = nb) -> None:
            if name in nb.declared:
                nb.parameters[name] = value
                nb.sources[name] = source

        for name, value in profile.defaults.items():
            put(name, value, f"{where}, defaults")
        for glob, values in profile.notebooks:
            if nb.matches(glob):
                for name, value in values.items():
                    put(name, value, f"{where}, notebooks {glob!r}")
        for name, value in overrides.items():
            put(name, value, f"-p {name}")
        problems += _value_problems(nb)
    if problems:
        raise InvalidParameterError(
            "Nothing was run; fix these parameter values first: " + " ".join(problems)
        )


def _value_problems(nb: CourseNotebook) -> list[str]:
    """What is wrong with the values about to be passed to ``nb`` (its ``parameters``, each
    from ``sources[name]``): a name it does not declare, a wrong type, a value out of range."""
    problems = []
    for name, value in nb.parameters.items():
        declared = nb.declared.get(name)
        if declared is None:
            problems.append(f"{nb.label} declares no parameter {name!r} (from {nb.sources[name]}).")
        elif not declared.accepts(value):
            problems.append(
                f"{nb.label}: parameter {name!r} expects {declared.type_label} (its default "
                f"is {declared.default_source}), got {_describe(value)} from "
                f"{nb.sources[name]}."
            )
    for problem in parameter_problems(nb.parameters):
        name = problem.split("=", 1)[0]
        problems.append(f"{nb.label}: {problem} (from {nb.sources[name]})")
    return problems


def default_kernel() -> str:
    """``tlcourse`` (the kernel scripts/setup.sh registers for the course's own environment)
    when installed, else ``python3``. Naming the course's kernel avoids running the notebooks
    in whatever Python another ``python3`` kernel spec on the machine points at."""
    from jupyter_client.kernelspec import KernelSpecManager

    return "tlcourse" if "tlcourse" in KernelSpecManager().find_kernel_specs() else "python3"


def _check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = KernelSpecManager().find_kernel_specs()
    if kernel not in kernels:
        raise CourseError(
            f"No Jupyter kernel named {kernel!r} (installed: {', '.join(sorted(kernels)) or 'none'}). "
            f"Install one for this Python with: {sys.executable} -m ipykernel install --user "
            f"--name {kernel}, or pick an installed one with --kernel NAME."
        )


def _write_problem(path: Path, exc: OSError) -> str:
    """Why a folder cannot be written, in words: the file in the way, read-only, permission."""
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"{ancestor} is a file, not a folder"
            break
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({exc.strerror})"
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    return exc.strerror or str(exc)


def _check_writable(out: Path, what: str) -> None:
    """Create and delete one empty file in ``out``: a folder that cannot take the run's results
    is refused before an hour of training, not when the first summary is written."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".tlcourse-write-check-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CourseError(
            f"Cannot write {what} to {out}: {_write_problem(out, exc)}. Pick a folder you can "
            "write to with --out DIR (for example --out ~/tlcourse-runs/today)."
        ) from exc


def _prepare_out(out: Path) -> None:
    """Create the empty output folder, or refuse (one clear reason, nothing left behind)."""
    if out.exists() and not out.is_dir():
        raise CourseError(
            f"--out {out} is a file, not a folder. Pick another --out DIR, or omit --out to get "
            "a fresh runs/<timestamp>/."
        )
    if out.exists() and any(out.iterdir()):
        hint = ""
        with contextlib.suppress(CourseError):
            earlier = load_summary(out)
            if earlier.not_started or earlier.failed:
                hint = (f" If it is a run that was interrupted, finish it with: "
                        f"{_resume_command(out)}.")
        raise CourseError(
            f"The output directory {out} already exists and is not empty; the runner never "
            "overwrites earlier results. Pick another --out DIR, or omit --out to get a fresh "
            f"runs/<timestamp>/.{hint}"
        )
    missing = [folder for folder in (out, *out.parents) if not folder.exists()]
    made: list[Path] = []
    try:
        for folder in reversed(missing):  # outermost first, so each mkdir says which one failed
            folder.mkdir()
            made.append(folder)
        _check_writable(out, "the run's results")
    except (OSError, CourseError) as exc:
        for folder in reversed(made):  # nothing half-made stays behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, CourseError):
            raise
        raise CourseError(
            f"Cannot create the output folder {out}: {_write_problem(out, exc)}. Pick a folder "
            "you can write to with --out DIR (for example --out ~/tlcourse-runs/today)."
        ) from exc


# --------------------------------------------------------------------------------------------
# Kernels: quiet, and stopped at once on Ctrl-C
# --------------------------------------------------------------------------------------------
# ipykernel logs this to its stderr at every start (the runner talks to its own kernels over
# localhost). Once per notebook it buried the run's own lines; only this line is dropped.
TCP_WARNING = "Kernel is running over TCP without encryption"
_INTERRUPTED = threading.Event()  # set by the runner's Ctrl-C handler
_KERNEL_MANAGER: type | None = None
_LIVE_KERNELS: set[Any] = set()  # managers whose kernel was started and not yet shut down


def _forward_stderr(pipe: Any, sink: TextIO) -> None:
    """Copy a kernel's stderr to ours line by line, without the TCP warning."""
    with pipe:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            if TCP_WARNING in line:
                continue
            with contextlib.suppress(Exception):  # a closed terminal must not block the kernel
                sink.write(line)
                sink.flush()


def _kernel_manager_class() -> type:
    """The kernel manager papermill (nbclient) starts each notebook's kernel with.

    It differs from jupyter_client's in two ways: the kernel's stderr goes through
    :func:`_forward_stderr`, and a shutdown after Ctrl-C kills the kernel at once. The default
    polite shutdown asks a kernel that is still busy with the interrupted cell to exit, which
    printed twenty lines of the kernel's traceback over the runner's message.
    """
    global _KERNEL_MANAGER
    if _KERNEL_MANAGER is None:
        from jupyter_client.manager import AsyncKernelManager

        class CourseKernelManager(AsyncKernelManager):
            async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
                kw["stderr"] = subprocess.PIPE
                await super()._async_launch_kernel(kernel_cmd, **kw)
                _LIVE_KERNELS.add(self)
                process = getattr(self.provisioner, "process", None)
                if process is not None and process.stderr is not None:
                    threading.Thread(target=_forward_stderr, args=(process.stderr, sys.stderr),
                                     name="tlcourse-kernel-stderr", daemon=True).start()

            async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
                try:
                    await super().shutdown_kernel(now=now or _INTERRUPTED.is_set(),
                                                  restart=restart)
                finally:
                    _LIVE_KERNELS.discard(self)

        _KERNEL_MANAGER = CourseKernelManager
    return _KERNEL_MANAGER


@contextmanager
def _ctrl_c_stops_kernels() -> Iterator[None]:
    """While notebooks run, Ctrl-C raises ``KeyboardInterrupt`` as usual and marks the run as
    interrupted, so kernels are killed rather than politely asked to finish; a second Ctrl-C
    while the runner cleans up and writes the summary is ignored (it takes a second)."""
    _INTERRUPTED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # started with Ctrl-C ignored (nohup, a background job)
        yield
        return

    def on_ctrl_c(signum: int, frame: Any) -> None:
        if not _INTERRUPTED.is_set():
            _INTERRUPTED.set()
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _INTERRUPTED.clear()


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
# A notebook's status: "ok", "failed" (it raised, timed out, its kernel died) or "interrupted"
# (Ctrl-C while it ran). A notebook of the plan with no result yet has not started.
STATUSES = ("ok", "failed", "interrupted")


@dataclass
class NotebookResult:
    """What happened to one notebook; ``output`` and figure paths are relative to the run."""

    name: str
    status: str  # one of STATUSES
    seconds: float
    output: str
    results: dict[str, Any]
    error: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    results_file: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "output": self.output,
            "results": self.results,
            "error": self.error,
            "parameters": self.parameters,
            "results_file": self.results_file,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NotebookResult:
        output = str(data["output"])
        default_results = Path(output).with_name(Path(output).stem + RESULTS_SUFFIX).as_posix()
        return cls(
            name=str(data["name"]),
            status=str(data["status"]),
            seconds=float(data["seconds"]),
            output=output,
            results=dict(data.get("results") or {}),
            error=data.get("error"),
            parameters=dict(data.get("parameters") or {}),
            results_file=str(data.get("results_file") or default_results),
        )


@dataclass
class RunSummary:
    """The whole run, as written to ``summary.json``.

    Besides the results it records what ``tlcourse run --resume`` needs to finish an interrupted
    run exactly as it was started: the course root and folders, the selection (``plan``: every
    selected notebook in run order with the parameter values it gets) and the options.
    """

    profile: str
    parameters: dict[str, Any]
    started: str
    out: Path
    kernel: str
    timeout: int | None
    description: str = ""
    finished: str | None = None
    notebooks: list[NotebookResult] = field(default_factory=list)
    root: Path | None = None
    lessons_dir: Path | None = None
    exercises_dir: Path | None = None
    profiles_file: Path | None = None
    only: str | None = None
    exercises: bool = False
    plan: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    interrupted: str | None = None  # the notebook Ctrl-C stopped (or the one after which)
    resumed: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[NotebookResult]:
        return [nb for nb in self.notebooks if nb.status != "ok"]

    @property
    def not_started(self) -> list[str]:
        ran = {nb.name for nb in self.notebooks}
        return [name for name, _ in self.plan if name not in ran]

    def record(self, result: NotebookResult) -> None:
        """Add (or replace) one notebook's result, keeping the plan's order."""
        order = [name for name, _ in self.plan]
        self.notebooks = [nb for nb in self.notebooks if nb.name != result.name] + [result]
        self.notebooks.sort(key=lambda nb: order.index(nb.name) if nb.name in order else len(order))

    def to_json(self) -> dict[str, Any]:
        def path(value: Path | None) -> str | None:
            return None if value is None else str(value)

        return {
            "profile": self.profile,
            "description": self.description,
            "parameters": self.parameters,
            "started": self.started,
            "finished": self.finished,
            "resumed": self.resumed,
            "interrupted": self.interrupted,
            "out": str(self.out),
            "kernel": self.kernel,
            "timeout": self.timeout,
            "root": path(self.root),
            "lessons_dir": path(self.lessons_dir),
            "exercises_dir": path(self.exercises_dir),
            "profiles_file": path(self.profiles_file),
            "only": self.only,
            "exercises": self.exercises,
            "plan": [{"name": name, "parameters": values} for name, values in self.plan],
            "not_started": self.not_started,
            "notebooks": [nb.to_json() for nb in self.notebooks],
        }

    def save(self) -> None:
        write_json_atomic(self.out / SUMMARY_FILE, self.to_json())


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; its summary and report are written. Still a ``KeyboardInterrupt``,
    so a script that calls :func:`run_course` stops as it would on any Ctrl-C."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary
        done = sum(nb.status == "ok" for nb in summary.notebooks)
        super().__init__(
            f"interrupted {_where_stopped(summary)}; {done} of {len(summary.plan)} notebook(s) "
            f"finished, summary and report in {summary.out}. Resume with: "
            f"{_resume_command(summary.out)}"
        )


def _where_stopped(summary: RunSummary) -> str:
    """"during 03_freezing.ipynb", or "between notebooks" when Ctrl-C came between two."""
    if summary.interrupted in {name for name, _ in summary.plan}:
        return f"during {summary.interrupted}"
    return summary.interrupted or "between notebooks"


def _resume_command(out: Path) -> str:
    return f"tlcourse run --resume {shlex.quote(str(out))}"


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the kernel papermill starts (it inherits ours)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _error_line(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        # The last line of the notebook's traceback: "ZeroDivisionError: division by zero".
        text = f"{exc.ename}: {exc.evalue}" if exc.evalue else str(exc.ename)
    else:  # a timeout, a dead kernel: the first line says what happened
        lines = [line for line in str(exc).splitlines() if line.strip()]
        text = f"{type(exc).__name__}: {lines[0].strip() if lines else ''}".rstrip(": ")
    return " ".join(text.split())


def _execute(nb: CourseNotebook, out: Path, kernel: str, timeout: int | None, root: Path) -> NotebookResult:
    """Run one notebook. Ctrl-C while it runs gives an "interrupted" result (its kernel is
    killed on the way out); the caller stops the run when it sees one."""
    import papermill

    output = nb.output_in(out)
    results_file = nb.results_in(out)
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {HEADLESS_ENV: "1", RESULTS_ENV: str(results_file.resolve())}
    banks = root / "exercises" / "banks"
    if banks.is_dir() and not os.environ.get("TLCOURSE_BANKS"):
        env["TLCOURSE_BANKS"] = str(banks.resolve())
    error, status = None, "ok"
    start = time.perf_counter()
    with _environment(env):
        try:
            papermill.execute_notebook(
                str(nb.path),
                str(output),
                parameters=dict(nb.parameters),
                kernel_name=kernel,
                cwd=str(output.parent),
                execution_timeout=timeout,
                progress_bar=False,
                log_output=False,
                kernel_manager_class=_kernel_manager_class(),
            )
        except KeyboardInterrupt:
            status = "interrupted"
        except Exception as exc:  # any failure of one notebook must not stop the others
            error, status = _error_line(exc), "failed"
    seconds = time.perf_counter() - start
    if status == "interrupted":
        error = f"interrupted (Ctrl-C) after {seconds:.1f} s"
    try:
        results = read_results(results_file)
    except CourseError as exc:
        results = {}
        if status == "ok":
            error, status = str(exc), "failed"
    return NotebookResult(
        name=nb.label,
        status=status,
        seconds=seconds,
        output=output.relative_to(out).as_posix(),
        results=results,
        error=error,
        parameters=dict(nb.parameters),
        results_file=results_file.relative_to(out).as_posix(),
    )


def _status_lines(result: NotebookResult, width: int, out: Path) -> str:
    status = {"ok": "ok", "failed": "FAILED"}.get(result.status, result.status)
    line = f"{status:<7} {result.name:<{width}} {result.seconds:7.1f} s"
    if result.error is not None:
        line += f"\n        {result.error}"
        partial = out / result.output
        if partial.exists():
            line += f"\n        partially executed notebook: {partial}"
    return line


@dataclass
class RunPlan:
    """Everything checked and decided before the first kernel starts."""

    root: Path
    profile: Profile
    profiles_path: Path
    overrides: dict[str, Any]
    notebooks: list[CourseNotebook]  # the selected ones, in run order, parameters filled in
    lessons_dir: Path | None = None
    exercises_dir: Path | None = None


def prepare_run(
    root: str | os.PathLike[str] | None = None,
    *,
    profile: str = "classroom",
    only: str | None = None,
    parameters: Mapping[str, Any] | Sequence[str] | None = None,
    exercises: bool = False,
    kernel: str = "python3",
    lessons_dir: str | os.PathLike[str] | None = None,
    exercises_dir: str | os.PathLike[str] | None = None,
    profiles_file: str | os.PathLike[str] | None = None,
) -> RunPlan:
    """Find, select and check the notebooks and every parameter value; run nothing.

    ``parameters`` is either ``{"epochs": 3}`` or command-line style ``["epochs=3"]``. The
    directories default to ``<root>/notebooks``, ``<root>/exercises`` and
    ``<root>/notebooks/profiles.yaml``. Lessons run first, then (``exercises=True``) the
    students' exercise notebooks, each group in numeric order.
    """
    root_path = Path(root).resolve() if root is not None else find_root()
    lessons = Path(lessons_dir) if lessons_dir is not None else root_path / LESSONS_DIR
    exercise_path = (Path(exercises_dir) if exercises_dir is not None
                     else root_path / EXERCISES_DIR)
    profiles_path = Path(profiles_file) if profiles_file is not None else lessons / PROFILES_FILE

    if parameters is None:
        overrides: dict[str, Any] = {}
    elif isinstance(parameters, Mapping):
        overrides = dict(parameters)
    else:
        overrides = dict(parse_assignment(text) for text in parameters)

    profiles = load_profiles(profiles_path)
    if profile not in profiles:
        raise unknown_name("profile", profile, profiles)
    chosen = profiles[profile]

    lesson_nbs = _course_notebooks(root_path, lessons, False, kernel)
    exercise_nbs = _course_notebooks(root_path, exercise_path, True, kernel)
    runnable = lesson_nbs + (exercise_nbs if exercises else [])
    if not runnable:
        where = f"{lessons}" + (f" or {exercise_path}" if exercises else "")
        raise CourseError(f"No NN_*.ipynb notebooks in {where}; is this the course folder?")
    selected = _selected(runnable, only)
    plan_run(lesson_nbs + exercise_nbs, selected, chosen, overrides, profiles_path)
    return RunPlan(root_path, chosen, profiles_path, overrides, selected,
                   lessons.resolve(), exercise_path.resolve())


def run_course(
    root: str | os.PathLike[str] | None = None,
    *,
    profile: str = "classroom",
    only: str | None = None,
    out: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, Any] | Sequence[str] | None = None,
    exercises: bool = False,
    timeout: int | None = None,
    kernel: str = "python3",
    lessons_dir: str | os.PathLike[str] | None = None,
    exercises_dir: str | os.PathLike[str] | None = None,
    profiles_file: str | os.PathLike[str] | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
) -> RunSummary:
    """Check (:func:`prepare_run`), then execute the notebooks; return and write the summary.

    ``timeout`` (seconds per cell) overrides the profile's; ``0`` means no limit. The output
    defaults to ``<root>/runs/<YYYYmmdd-HHMMSS>/`` and must not exist or be empty. Raises
    :class:`CourseError` for anything found before the first notebook runs; a notebook that
    fails while running is reported in the summary (and the others still run). Ctrl-C stops
    the run: the summary and report are written for what finished, and :class:`RunInterrupted`
    (a ``KeyboardInterrupt``) says how to finish it with :func:`resume_run`.
    """
    stream = stream or sys.stdout
    plan = prepare_run(
        root, profile=profile, only=only, parameters=parameters, exercises=exercises,
        kernel=kernel, lessons_dir=lessons_dir, exercises_dir=exercises_dir,
        profiles_file=profiles_file,
    )
    _check_kernel(kernel)
    chosen, selected = plan.profile, plan.notebooks

    if timeout is None:
        cell_timeout = chosen.timeout
    else:
        cell_timeout = timeout if timeout > 0 else None
    started = datetime.now().astimezone()
    out_path = (Path(out) if out is not None
                else plan.root / "runs" / started.strftime("%Y%m%d-%H%M%S")).resolve()
    _prepare_out(out_path)

    summary = RunSummary(
        profile=profile,
        parameters=plan.overrides,
        started=started.isoformat(timespec="seconds"),
        out=out_path,
        kernel=kernel,
        timeout=cell_timeout,
        description=chosen.description,
        root=plan.root,
        lessons_dir=plan.lessons_dir,
        exercises_dir=plan.exercises_dir,
        profiles_file=plan.profiles_path.resolve(),
        only=only,
        exercises=exercises,
        plan=[(nb.label, dict(nb.parameters)) for nb in selected],
    )
    summary.save()  # from the start, so even a run stopped in its first notebook can resume
    limit = f"{cell_timeout} s per cell" if cell_timeout else "no per-cell timeout"
    print(f"tlcourse run: profile {profile}, {len(selected)} notebook(s), kernel {kernel}, "
          f"{limit} -> {out_path}", file=stream, flush=True)
    return _run_notebooks(summary, selected, progress, stream)


def _run_notebooks(summary: RunSummary, todo: list[CourseNotebook], progress: bool,
                   stream: TextIO) -> RunSummary:
    """Execute ``todo`` in order into ``summary.out``, saving the summary after each one."""
    from tqdm.auto import tqdm

    out = summary.out
    width = max(len(name) for name, _ in summary.plan)
    bar = tqdm(todo, desc="notebooks", unit="nb", disable=not progress)
    current: CourseNotebook | None = None
    interrupted = False
    with _ctrl_c_stops_kernels():
        try:
            for nb in bar:
                current = nb
                bar.set_postfix_str(nb.label)
                result = _execute(nb, out, summary.kernel, summary.timeout, summary.root or out)
                summary.record(result)
                if result.status == "interrupted":
                    raise KeyboardInterrupt
                current = None
                # Saved after every notebook, so a killed run still leaves a usable summary.
                summary.save()
                tqdm.write(_status_lines(result, width, out), file=stream)
        except KeyboardInterrupt:
            # Our handler now ignores a second Ctrl-C until the summary and report are written.
            _INTERRUPTED.set()
            interrupted = True
            _stop_leftover_kernels()
            if current is not None and current.label not in {nb.name for nb in summary.notebooks
                                                              if nb.status == "interrupted"}:
                summary.record(_interrupted_result(current, out))
            summary.interrupted = current.label if current is not None else "between notebooks"
        finally:
            bar.close()
            summary.finished = datetime.now().astimezone().isoformat(timespec="seconds")
            summary.save()
            write_report(summary)
    if interrupted:
        raise RunInterrupted(summary) from None
    total = sum(nb.seconds for nb in summary.notebooks)
    print(f"{len(summary.notebooks) - len(summary.failed)} ok, {len(summary.failed)} failed in "
          f"{total:.1f} s. Summary: {out / SUMMARY_FILE}  Report: {out / REPORT_FILE}",
          file=stream, flush=True)
    return summary


def _stop_leftover_kernels() -> None:
    """Kill a kernel Ctrl-C caught while it was starting (before nbclient could own it).

    Kernels run in their own session, so the terminal's Ctrl-C never reaches them; one left
    running would only exit when it notices its parent is gone."""
    for manager in list(_LIVE_KERNELS):
        _LIVE_KERNELS.discard(manager)
        process = getattr(manager.provisioner, "process", None)
        if process is None or process.poll() is not None:
            continue
        with contextlib.suppress(OSError):
            if hasattr(os, "killpg"):  # the kernel leads its own process group
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        with contextlib.suppress(Exception):
            process.wait(timeout=5)
            manager.cleanup_connection_file()


def _interrupted_result(nb: CourseNotebook, out: Path) -> NotebookResult:
    try:
        results = read_results(nb.results_in(out))
    except CourseError:
        results = {}
    return NotebookResult(
        name=nb.label, status="interrupted", seconds=0.0,
        output=nb.output_in(out).relative_to(out).as_posix(), results=results,
        error="interrupted (Ctrl-C)", parameters=dict(nb.parameters),
        results_file=nb.results_in(out).relative_to(out).as_posix(),
    )


# --------------------------------------------------------------------------------------------
# Resuming an interrupted (or partly failed) run
# --------------------------------------------------------------------------------------------
_RESUME_KEYS = ("profile", "parameters", "started", "kernel", "timeout", "root", "plan",
                "notebooks", "exercises")


def _not_resumable(out: Path, why: str) -> CourseError:
    return CourseError(
        f"--resume {out}: {why}. --resume takes the folder of an earlier `tlcourse run` (the "
        "one holding its summary.json); to start afresh, run without --resume."
    )


def load_summary(out: str | os.PathLike[str]) -> RunSummary:
    """Read a run folder's ``summary.json`` back, refusing anything that is not one."""
    out_path = Path(out).expanduser().resolve()
    if not out_path.exists():
        raise _not_resumable(out_path, "no such folder")
    if not out_path.is_dir():
        raise _not_resumable(out_path, "this is a file, not a run folder")
    path = out_path / SUMMARY_FILE
    if not path.is_file():
        raise _not_resumable(out_path, f"not a run folder (it has no {SUMMARY_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_resumable(out_path, f"its {SUMMARY_FILE} cannot be read ({exc})") from exc
    missing = [key for key in _RESUME_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise _not_resumable(
            out_path, f"its {SUMMARY_FILE} lacks {', '.join(missing)} (written by an older "
            "tlcourse, or not by tlcourse run), so the run cannot be repeated as it was started")
    try:
        plan = [(str(item["name"]), dict(item["parameters"])) for item in data["plan"]]
        notebooks = [NotebookResult.from_json(item) for item in data["notebooks"]]
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise _not_resumable(out_path, f"its {SUMMARY_FILE} is damaged ({exc!r})") from exc

    def path_or_none(key: str) -> Path | None:
        return Path(data[key]) if data.get(key) else None

    return RunSummary(
        profile=str(data["profile"]), parameters=dict(data["parameters"] or {}),
        started=str(data["started"]), out=out_path, kernel=str(data["kernel"]),
        timeout=data["timeout"], description=str(data.get("description") or ""),
        finished=data.get("finished"), notebooks=notebooks, root=Path(data["root"]),
        lessons_dir=path_or_none("lessons_dir"), exercises_dir=path_or_none("exercises_dir"),
        profiles_file=path_or_none("profiles_file"), only=data.get("only"),
        exercises=bool(data["exercises"]), plan=plan, interrupted=data.get("interrupted"),
        resumed=list(data.get("resumed") or []),
    )


def _remove_stale_outputs(result: NotebookResult, out: Path) -> None:
    """Before a notebook reruns: its results file would otherwise be merged into (record()
    adds to it) and figures it no longer records would stay linked."""
    results_file = out / result.results_file
    for name in (result.results.get("figures") or {}).values():
        with contextlib.suppress(OSError):
            (results_file.parent / str(name)).unlink()
    with contextlib.suppress(OSError):
        results_file.unlink()


def resume_run(out: str | os.PathLike[str], *, progress: bool = True,
               stream: TextIO | None = None) -> RunSummary:
    """Finish a run in ``out``: rerun the notebooks that did not end ``ok`` (failed,
    interrupted, never started) with the parameter values recorded when it started, keep the
    ones that did, and update ``summary.json`` and ``report.md``.

    Everything is checked before a kernel starts: the folder is a run folder, the course it
    came from is still there with every notebook of the run, and each recorded value is still
    accepted by its notebook.
    """
    stream = stream or sys.stdout
    summary = load_summary(out)
    root = summary.root
    if root is None or not (root / LESSONS_DIR).is_dir():
        raise _not_resumable(summary.out, f"the course it ran, {root}, has no {LESSONS_DIR}/ "
                             "folder any more")
    plan = prepare_run(
        root, profile=summary.profile, only=summary.only, parameters=summary.parameters,
        exercises=summary.exercises, kernel=summary.kernel, lessons_dir=summary.lessons_dir,
        exercises_dir=summary.exercises_dir, profiles_file=summary.profiles_file,
    )
    _check_kernel(summary.kernel)
    by_label = {nb.label: nb for nb in plan.notebooks}
    kept = {nb.name for nb in summary.notebooks if nb.status == "ok"}
    todo, problems = [], []
    for label, values in summary.plan:
        nb = by_label.get(label)
        if nb is None:
            problems.append(f"{label} is no longer in the course ({root}).")
            continue
        nb.parameters = dict(values)
        nb.sources = {name: f"{summary.out / SUMMARY_FILE}" for name in values}
        problems += _value_problems(nb)
        if label not in kept:
            todo.append(nb)
    if problems:
        raise _not_resumable(summary.out, "the course changed since the run started: "
                             + " ".join(problems))
    _check_writable(summary.out, "the resumed run's results")
    if not todo:
        print(f"tlcourse run --resume: nothing to do, all {len(summary.plan)} notebook(s) in "
              f"{summary.out} ran ok.", file=stream, flush=True)
        return summary
    previous = {nb.name: nb for nb in summary.notebooks}
    for nb in todo:
        if nb.label in previous:
            _remove_stale_outputs(previous[nb.label], summary.out)
    summary.notebooks = [nb for nb in summary.notebooks if nb.status == "ok"]
    summary.interrupted = None
    summary.resumed.append(datetime.now().astimezone().isoformat(timespec="seconds"))
    summary.save()
    print(f"tlcourse run --resume: {len(todo)} of {len(summary.plan)} notebook(s) to run "
          f"({len(kept)} ok kept), profile {summary.profile}, kernel {summary.kernel} -> "
          f"{summary.out}", file=stream, flush=True)
    return _run_notebooks(summary, todo, progress, stream)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, dict)):
        text = json.dumps(value)
        if len(text) > 120:
            text = text[:117] + "..."
    else:
        text = str(value)
    return " ".join(text.replace("|", "\\|").split())


def _report_section(result: NotebookResult, out: Path) -> list[str]:
    lines = [f"## {result.name}", ""]
    if result.status == "ok":
        lines.append(f"**ok** in {result.seconds:.1f} s. Executed notebook: "
                     f"[{result.output}]({result.output})")
    else:
        word = "FAILED" if result.status == "failed" else result.status.upper()
        lines.append(f"**{word}** after {result.seconds:.1f} s: `{result.error}`")
        if (out / result.output).exists():
            lines.append(f"Partially executed notebook: [{result.output}]({result.output})")
    lines.append("")
    if result.parameters:
        passed = ", ".join(f"`{k}={v!r}`" for k, v in result.parameters.items())
        lines += [f"Parameters passed: {passed}", ""]
    values = result.results.get("values") or {}
    if values:
        lines += ["| result | value |", "| --- | --- |"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in values.items()]
        lines.append("")
    run = result.results.get("run") or {}
    if run:
        env = run.get("environment") or {}
        facts = [f"seed {run.get('seed')}", f"device {env.get('device', '?')}",
                 f"torch {env.get('torch', '?')}", f"python {env.get('python', '?')}"]
        lines += ["Run: " + ", ".join(facts) + ".", ""]
    base = Path(result.results_file).parent
    for name, filename in (result.results.get("figures") or {}).items():
        link = (base / filename).as_posix()
        lines += [f"![{name}]({link})", ""]
    if result.status == "ok" and not values and not run:
        lines += ["(No results recorded.)", ""]
    return lines


def write_report(summary: RunSummary) -> Path:
    """Write ``report.md`` next to ``summary.json``: one section per notebook, links relative."""
    out = summary.out
    ok = sum(nb.status == "ok" for nb in summary.notebooks)
    failed = sum(nb.status == "failed" for nb in summary.notebooks)
    total = sum(nb.seconds for nb in summary.notebooks)
    overrides = ", ".join(f"`{k}={v!r}`" for k, v in summary.parameters.items()) or "none"
    limit = f"{summary.timeout} s" if summary.timeout else "none"
    counts = f"{ok} ok, {failed} failed"
    interrupted = sum(nb.status == "interrupted" for nb in summary.notebooks)
    if interrupted:
        counts += f", {interrupted} interrupted"
    if summary.not_started:
        counts += f", {len(summary.not_started)} not started"
    lines = [
        f"# Course run {summary.started}",
        "",
        f"Profile **{summary.profile}**" + (f" ({summary.description})" if summary.description
                                           else "") + ".",
        f"Kernel `{summary.kernel}`, per-cell timeout {limit}, command-line overrides: "
        f"{overrides}.",
        "",
        f"**{counts}**, {total:.1f} s in total.",
        "",
    ]
    if summary.resumed:
        lines += [f"Resumed {', '.join(summary.resumed)}.", ""]
    if summary.interrupted or summary.not_started:
        stopped = f"Stopped by Ctrl-C {_where_stopped(summary)}. " if summary.interrupted else ""
        lines += [f"{stopped}Finish the run with `{_resume_command(out)}`: it reruns only the "
                  "notebooks that are not ok, with the same parameters.", ""]
    lines += ["| notebook | status | time (s) |", "| --- | --- | --- |"]
    words = {"ok": "ok", "failed": "**FAILED**", "interrupted": "**interrupted**"}
    lines += [f"| {nb.name} | {words.get(nb.status, nb.status)} | {nb.seconds:.1f} |"
              for nb in summary.notebooks]
    lines += [f"| {name} | not started | |" for name in summary.not_started]
    lines.append("")
    for result in summary.notebooks:
        lines += _report_section(result, out)
    return atomic_write_text("\n".join(lines).rstrip() + "\n", out / REPORT_FILE)


_RUN_OPTIONS = (("profile", "--profile"), ("only", "--only"), ("out", "--out"),
                ("parameter", "-p"), ("exercises", "--exercises"), ("timeout", "--timeout"),
                ("kernel", "--kernel"))


def cli_run(args: Any) -> int:
    """``tlcourse run``: exit status 0 if every notebook ran, 1 if any failed, 130 on Ctrl-C."""
    try:
        if getattr(args, "resume", None):
            given = [flag for name, flag in _RUN_OPTIONS
                     if getattr(args, name, None) not in (None, [])
                     and getattr(args, name, None) is not False]
            if given:
                raise CourseError(
                    f"--resume repeats the run with the settings recorded in its "
                    f"{SUMMARY_FILE}; it takes no {', '.join(given)}. Drop them, or start a "
                    "new run without --resume."
                )
            summary = resume_run(args.resume)
        else:
            summary = run_course(
                profile=args.profile or "classroom",
                only=args.only,
                out=args.out,
                parameters=list(args.parameter or []),
                exercises=bool(args.exercises),
                timeout=args.timeout,
                kernel=args.kernel or default_kernel(),
            )
    except RunInterrupted as exc:
        print(f"tlcourse run: {exc}", file=sys.stderr, flush=True)
        return 130
    return 1 if summary.failed else 0
