"""Code-exercise checkers: plain functions that inspect a learner's objects.

- :mod:`.registry`: ``CHECKERS``, :func:`register_checker`, :func:`get_checker`;
- :mod:`.common`: the generic value checks (``value_close``, ``value_equal``) and the helpers
  the lessons' checkers share;
- ``lesson00`` ... ``lesson10``: each lesson's own checkers. A checker lives with the lesson
  that introduces it; later banks reuse it by name (``trainable_stages`` is lesson 01's and
  also serves 05, 06 and 07).

A bank refers to a checker by its registered name alone (``checker: layer_decay_lrs``).
Importing this package imports every lesson module, so the registry is complete whichever
module is asked first. Add a checker by decorating a function in its lesson's module with
:func:`register_checker`.
"""
from __future__ import annotations

# Importing the lesson modules registers their checkers: the registry is complete from here on.
from . import common, lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08, lesson09, lesson10
from .registry import CHECKERS, get_checker, module_path_problem, register_checker

__all__ = [
    "CHECKERS",
    "common",
    "lesson00",
    "get_checker",
    "lesson01",
    "lesson02",
    "lesson03",
    "lesson04",
    "lesson05",
    "lesson06",
    "lesson07",
    "lesson08",
    "lesson09",
    "lesson10",
    "module_path_problem",
    "register_checker",
]
