"""The checker registry: the one place a bank's ``checker:`` name is looked up.

A bank names a checker by the name it was registered under, nothing else
(``checker: layer_decay_lrs``). Module paths (``tlcourse.exercises.checkers_domains:seed_spread``,
the second scheme banks used to have) are refused: a bank is a data file, and a data file that
could name any module to import could run code. Registration happens when
:mod:`tlcourse.exercises.checkers` imports the lesson modules, so importing the package is
enough to see every checker.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import CourseError, InvalidParameterError, unknown_name
from ..feedback import Feedback

CHECKERS: dict[str, Callable[..., Feedback]] = {}


def register_checker(
    fn: Callable[..., Feedback] | None = None, *, name: str | None = None
) -> Any:
    """Register ``fn`` under ``name`` (default: its ``__name__``) so banks can refer to it.

    Usable bare (``@register_checker``) or with a name (``@register_checker(name="x")``). The
    name must be a Python identifier: that is the one form a bank may write.
    """

    def add(f: Callable[..., Feedback]) -> Callable[..., Feedback]:
        key = name or f.__name__
        if not key.isidentifier():
            raise InvalidParameterError(
                f"A checker name must be a Python identifier (letters, digits, '_'), got {key!r}."
            )
        if key in CHECKERS and CHECKERS[key] is not f:
            raise InvalidParameterError(
                f"A checker named {key!r} is already registered ({CHECKERS[key].__module__}); "
                "pick another name."
            )
        CHECKERS[key] = f
        return f

    return add(fn) if fn is not None else add


def module_path_problem(name: Any) -> str | None:
    """Why ``name`` is refused, if it is written as a module path rather than a checker name."""
    if not isinstance(name, str) or not any(c in name for c in ".:"):
        return None
    short = name.rpartition(":")[2].rpartition(".")[2]
    fix = (
        f"write `checker: {short}`"
        if short in CHECKERS
        else f"write one of the registered names: {', '.join(sorted(CHECKERS))}"
    )
    return (
        f"checker {name!r} is a module path; a bank names a checker by its registered name "
        f"alone, so {fix}."
    )


def get_checker(name: str) -> Callable[..., Feedback]:
    """The registered checker ``name`` (a :class:`CourseError` listing the valid names if not)."""
    if isinstance(name, str) and name in CHECKERS:
        return CHECKERS[name]
    problem = module_path_problem(name)
    if problem:
        raise CourseError(problem[0].upper() + problem[1:])
    raise unknown_name("checker", name, CHECKERS)


__all__ = ["CHECKERS", "get_checker", "module_path_problem", "register_checker"]
