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
   ``report.md`` (for people) from what the notebooks recorded with :mod:`tlcourse.results`.
"""
from __future__ import annotations

import ast
import difflib
import fnmatch
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import atomic
from .errors import CourseError, InvalidParameterError, unknown_name
from .params import COMMON_PARAMETERS, parameter_problems
from .results import (
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


def declared_parameters(path: Path, kernel: str = "python3") -> dict[str, DeclaredParameter]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (empty if none)."""
    import nbformat
    import papermill

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for a broken file
        raise CourseError(
            f"Cannot read the notebook {path}: {exc}. Restore it from git (git checkout -- "
            f"{path.name}) or open and re-save it in Jupyter."
        ) from exc
    if (nb.metadata.get("kernelspec") or {}).get("name"):
        raw = papermill.inspect_notebook(str(path))
    else:
        # inspect_notebook needs the kernel name stored in the notebook; this one has none, so
        # ask the translator papermill will use for the kernel we run it with.
        from papermill.translators import papermill_translators

        cells = [c for c in nb.cells if "parameters" in (c.metadata.get("tags") or [])]
        language = (nb.metadata.get("language_info") or {}).get("name", "python")
        raw = {}
        if cells:
            translator = papermill_translators.find_translator(kernel, language)
            raw = {p.name: p._asdict() for p in translator.inspect(cells[0])}
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
        for name, value in nb.parameters.items():
            declared = nb.declared[name]
            if not declared.accepts(value):
                problems.append(
                    f"{nb.label}: parameter {name!r} expects {declared.type_label} (its default "
                    f"is {declared.default_source}), got {_describe(value)} from "
                    f"{nb.sources[name]}."
                )
        for problem in parameter_problems(nb.parameters):
            name = problem.split("=", 1)[0]
            problems.append(f"{nb.label}: {problem} (from {nb.sources[name]})")
    if problems:
        raise InvalidParameterError(
            "Nothing was run; fix these parameter values first: " + " ".join(problems)
        )


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


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CourseError(
            f"The output directory {out} already exists and is not empty; the runner never "
            "overwrites earlier results. Pick another --out DIR, or omit --out to get a fresh "
            "runs/<timestamp>/."
        )
    out.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
@dataclass
class NotebookResult:
    """What happened to one notebook; ``output`` and figure paths are relative to the run."""

    name: str
    status: str  # "ok" or "failed"
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
        }


@dataclass
class RunSummary:
    """The whole run, as written to ``summary.json``."""

    profile: str
    parameters: dict[str, Any]
    started: str
    out: Path
    kernel: str
    timeout: int | None
    description: str = ""
    finished: str | None = None
    notebooks: list[NotebookResult] = field(default_factory=list)

    @property
    def failed(self) -> list[NotebookResult]:
        return [nb for nb in self.notebooks if nb.status != "ok"]

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "parameters": self.parameters,
            "started": self.started,
            "finished": self.finished,
            "out": str(self.out),
            "kernel": self.kernel,
            "timeout": self.timeout,
            "notebooks": [nb.to_json() for nb in self.notebooks],
        }


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
    import papermill

    output = nb.output_in(out)
    results_file = nb.results_in(out)
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {HEADLESS_ENV: "1", RESULTS_ENV: str(results_file.resolve())}
    banks = root / "exercises" / "banks"
    if banks.is_dir() and not os.environ.get("TLCOURSE_BANKS"):
        env["TLCOURSE_BANKS"] = str(banks.resolve())
    error = None
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
            )
        except Exception as exc:  # any failure of one notebook must not stop the others
            error = _error_line(exc)
    seconds = time.perf_counter() - start
    try:
        results = read_results(results_file)
    except CourseError as exc:
        results, error = {}, error or str(exc)
    return NotebookResult(
        name=nb.label,
        status="ok" if error is None else "failed",
        seconds=seconds,
        output=output.relative_to(out).as_posix(),
        results=results,
        error=error,
        parameters=dict(nb.parameters),
        results_file=results_file.relative_to(out).as_posix(),
    )


def _status_lines(result: NotebookResult, width: int, out: Path) -> str:
    status = "ok" if result.status == "ok" else "FAILED"
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
    return RunPlan(root_path, chosen, profiles_path, overrides, selected)


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
    fails while running is reported in the summary (and the others still run).
    """
    from tqdm.auto import tqdm

    stream = stream or sys.stdout
    plan = prepare_run(
        root, profile=profile, only=only, parameters=parameters, exercises=exercises,
        kernel=kernel, lessons_dir=lessons_dir, exercises_dir=exercises_dir,
        profiles_file=profiles_file,
    )
    _check_kernel(kernel)
    chosen, selected, overrides = plan.profile, plan.notebooks, plan.overrides

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
        parameters=overrides,
        started=started.isoformat(timespec="seconds"),
        out=out_path,
        kernel=kernel,
        timeout=cell_timeout,
        description=chosen.description,
    )
    width = max(len(nb.label) for nb in selected)
    limit = f"{cell_timeout} s per cell" if cell_timeout else "no per-cell timeout"
    print(f"tlcourse run: profile {profile}, {len(selected)} notebook(s), kernel {kernel}, "
          f"{limit} -> {out_path}", file=stream, flush=True)
    bar = tqdm(selected, desc="notebooks", unit="nb", disable=not progress)
    for nb in bar:
        bar.set_postfix_str(nb.label)
        result = _execute(nb, out_path, kernel, cell_timeout, plan.root)
        summary.notebooks.append(result)
        # Written after every notebook, so an interrupted run still leaves a usable summary.
        write_json_atomic(out_path / "summary.json", summary.to_json())
        tqdm.write(_status_lines(result, width, out_path), file=stream)
    bar.close()
    summary.finished = datetime.now().astimezone().isoformat(timespec="seconds")
    write_json_atomic(out_path / "summary.json", summary.to_json())
    write_report(summary)
    total = sum(nb.seconds for nb in summary.notebooks)
    print(f"{len(summary.notebooks) - len(summary.failed)} ok, {len(summary.failed)} failed in "
          f"{total:.1f} s. Summary: {out_path / 'summary.json'}  Report: "
          f"{out_path / 'report.md'}", file=stream, flush=True)
    return summary


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
        lines.append(f"**FAILED** after {result.seconds:.1f} s: `{result.error}`")
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
    ok = len(summary.notebooks) - len(summary.failed)
    total = sum(nb.seconds for nb in summary.notebooks)
    overrides = ", ".join(f"`{k}={v!r}`" for k, v in summary.parameters.items()) or "none"
    limit = f"{summary.timeout} s" if summary.timeout else "none"
    lines = [
        f"# Course run {summary.started}",
        "",
        f"Profile **{summary.profile}**" + (f" ({summary.description})" if summary.description
                                           else "") + ".",
        f"Kernel `{summary.kernel}`, per-cell timeout {limit}, command-line overrides: "
        f"{overrides}.",
        "",
        f"**{ok} ok, {len(summary.failed)} failed**, {total:.1f} s in total.",
        "",
        "| notebook | status | time (s) |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {nb.name} | {'ok' if nb.status == 'ok' else '**FAILED**'} | {nb.seconds:.1f} |"
              for nb in summary.notebooks]
    lines.append("")
    for result in summary.notebooks:
        lines += _report_section(result, out)
    path = out / "report.md"
    atomic.write_text("\n".join(lines).rstrip() + "\n", path)
    return path


def cli_run(args: Any) -> int:
    """``tlcourse run``: exit status 0 if every notebook ran, 1 if any failed."""
    summary = run_course(
        profile=args.profile,
        only=args.only,
        out=args.out,
        parameters=list(args.parameter or []),
        exercises=bool(args.exercises),
        timeout=args.timeout,
        kernel=args.kernel or default_kernel(),
    )
    return 1 if summary.failed else 0
