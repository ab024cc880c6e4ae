"""Every check that can fail before a kernel starts, and the values each notebook gets.

An unknown name or a value of the wrong type fails here in a second, not after an hour of
training (papermill itself would only warn and inject the typo). Precedence: the notebook's
own default < profile ``defaults`` < matching profile ``notebooks:`` entries < ``-p``.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CourseError, InvalidParameterError, unknown_name
from ..params import COMMON_PARAMETERS, absolute_folders, parameter_problems
from .discover import (
    EXERCISES_DIR,
    LESSONS_DIR,
    CourseNotebook,
    course_notebooks,
    find_root,
    select,
)
from .profiles import PROFILES_FILE, Profile, load_profiles
from .values import parse_assignment


def _valid_list(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "(none: no notebook has a cell tagged 'parameters')"


def _did_you_mean(name: str, names: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _declared_by(notebooks: list[CourseNotebook]) -> set[str]:
    return set().union(*(nb.declared for nb in notebooks))


def _refuse_unknown(names: Iterable[str], valid: set[str], said: Callable[[str], str],
                    valid_label: str = "Valid parameters") -> None:
    """Raise for the first of ``names`` not in ``valid``: what was said, the closest valid
    name, then the valid ones."""
    for name in names:
        if name not in valid:
            raise InvalidParameterError(
                f"{said(name)}{_did_you_mean(name, valid)} {valid_label}: {_valid_list(valid)}."
            )


def _check_profile_names(course: list[CourseNotebook], profile: Profile, where: str) -> None:
    """Profile names against the whole course: a profile serves every ``--only`` selection,
    so a typo there is a typo whatever is selected."""
    _refuse_unknown(
        profile.defaults, set(COMMON_PARAMETERS) | _declared_by(course),
        lambda name: (f"{where} sets {name!r} under 'defaults:', but no notebook declares it "
                      "and it is not a common parameter."),
    )
    for glob, values in profile.notebooks:
        matched = [nb for nb in course if nb.matches(glob)]
        if not matched:
            raise CourseError(
                f"{where}: 'notebooks:' entry {glob!r} matches no notebook. Notebooks: "
                f"{', '.join(nb.label for nb in course)}."
            )
        labels = ", ".join(nb.label for nb in matched)
        _refuse_unknown(
            values, _declared_by(matched),
            lambda name: (f"{where}: 'notebooks:' entry {glob!r} sets {name!r}, which none of "
                          f"{labels} declares."),  # noqa: B023 - called before the loop moves on
            "Valid parameters there",
        )


def check_override_names(selected: list[CourseNotebook], names: Iterable[str],
                         flag: str = "-p") -> None:
    """``-p`` (or ``--grid``) names against the selected notebooks: a name none of the
    notebooks being run declares does nothing, which is never what was meant."""
    _refuse_unknown(
        names, _declared_by(selected),
        lambda name: f"{flag} {name}=... : no selected notebook declares a parameter {name!r}.",
    )


def _fill(nb: CourseNotebook, profile: Profile, overrides: Mapping[str, Any], where: str,
          said: Mapping[str, str]) -> None:
    """Set ``nb.parameters`` (and where each value came from) in order of precedence."""
    nb.parameters, nb.sources = {}, {}

    def put(name: str, value: Any, source: str) -> None:
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
        put(name, value, said.get(name, f"-p {name}"))


def plan_run(
    course: list[CourseNotebook],
    selected: list[CourseNotebook],
    profile: Profile,
    overrides: Mapping[str, Any],
    profiles_path: Path | str = PROFILES_FILE,
    said: Mapping[str, str] | None = None,
) -> None:
    """Fill each selected notebook's ``parameters`` or raise listing every problem found.

    Names are checked against the whole course for profile values and against the selected
    notebooks for ``-p`` overrides; then every value against the notebook that gets it.
    ``said`` names where an override came from when it was not ``-p`` (``--grid seed=...``).
    """
    where = f"profile {profile.name!r} in {profiles_path}"
    _check_profile_names(course, profile, where)
    check_override_names(selected, overrides)
    problems = []
    for nb in selected:
        _fill(nb, profile, overrides, where, said or {})
        nb.parameters.update(absolute_folders(nb.parameters))
        problems += value_problems(nb)
    if problems:
        raise InvalidParameterError(
            "Nothing was run; fix these parameter values first: " + " ".join(problems)
        )


def value_problems(nb: CourseNotebook) -> list[str]:
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


def overrides_from(parameters: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    if parameters is None:
        return {}
    if isinstance(parameters, Mapping):
        return dict(parameters)
    return dict(parse_assignment(text) for text in parameters)


def _chosen_profile(profiles_path: Path, profile: str) -> Profile:
    profiles = load_profiles(profiles_path)
    if profile not in profiles:
        raise unknown_name("profile", profile, profiles)
    return profiles[profile]


@dataclass
class CourseSelection:
    """The course as found on disk, the chosen profile and the selected notebooks, before any
    value is planned: what :func:`prepare_run` plans once and ``tlcourse sweep`` once per
    combination of its grid."""

    root: Path
    profile: Profile
    profiles_path: Path
    course: list[CourseNotebook]  # every lesson and exercise notebook (profile names are
    selected: list[CourseNotebook]  # checked against all of them); the ones to run
    lessons_dir: Path
    exercises_dir: Path


def select_course(
    root: str | os.PathLike[str] | None = None,
    *,
    profile: str = "classroom",
    only: str | None = None,
    exercises: bool = False,
    kernel: str = "python3",
    lessons_dir: str | os.PathLike[str] | None = None,
    exercises_dir: str | os.PathLike[str] | None = None,
    profiles_file: str | os.PathLike[str] | None = None,
) -> CourseSelection:
    """Find the course, read its profiles and notebooks, select the ones to run; plan nothing.

    The directories default to ``<root>/notebooks``, ``<root>/exercises`` and
    ``<root>/notebooks/profiles.yaml``. Lessons come first, then (``exercises=True``) the
    students' exercise notebooks, each group in numeric order.
    """
    root_path = Path(root).resolve() if root is not None else find_root()
    lessons = Path(lessons_dir) if lessons_dir is not None else root_path / LESSONS_DIR
    exercise_path = (Path(exercises_dir) if exercises_dir is not None
                     else root_path / EXERCISES_DIR)
    profiles_path = Path(profiles_file) if profiles_file is not None else lessons / PROFILES_FILE
    chosen = _chosen_profile(profiles_path, profile)

    lesson_nbs = course_notebooks(root_path, lessons, False, kernel)
    exercise_nbs = course_notebooks(root_path, exercise_path, True, kernel)
    runnable = lesson_nbs + (exercise_nbs if exercises else [])
    if not runnable:
        where = f"{lessons}" + (f" or {exercise_path}" if exercises else "")
        raise CourseError(f"No NN_*.ipynb notebooks in {where}; is this the course folder?")
    selected = select(runnable, only)
    return CourseSelection(root_path, chosen, profiles_path, lesson_nbs + exercise_nbs, selected,
                           lessons.resolve(), exercise_path.resolve())


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

    ``parameters`` is either ``{"epochs": 3}`` or command-line style ``["epochs=3"]``; the
    rest is :func:`select_course`'s.
    """
    overrides = overrides_from(parameters)
    found = select_course(
        root, profile=profile, only=only, exercises=exercises, kernel=kernel,
        lessons_dir=lessons_dir, exercises_dir=exercises_dir, profiles_file=profiles_file,
    )
    plan_run(found.course, found.selected, found.profile, overrides, found.profiles_path)
    return RunPlan(found.root, found.profile, found.profiles_path, overrides, found.selected,
                   found.lessons_dir, found.exercises_dir)
