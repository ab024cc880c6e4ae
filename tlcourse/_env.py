"""On/off switches read from environment variables, read one way everywhere.

``TLCOURSE_HEADLESS`` (set by ``tlcourse run``) and ``TLCOURSE_EXAM`` (set by a teacher) are
read by several parts of the course; they once disagreed on ``on`` (the exercises took it as
on, the results module as off). A value that is neither a yes nor a no word is refused rather
than read as "off": ``TLCOURSE_EXAM=ture`` must not quietly reveal the solutions.
"""
from __future__ import annotations

import os

from .errors import CourseError

HEADLESS_ENV = "TLCOURSE_HEADLESS"
EXAM_ENV = "TLCOURSE_EXAM"

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is switched on (unset or empty: off).

    Case and surrounding spaces do not matter; anything but 1/true/yes/on or 0/false/no/off
    raises :class:`CourseError` naming the variable and its value.
    """
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise CourseError(
        f"The environment variable {name}={raw!r} is neither on nor off: set it to 1 (or "
        f"true, yes, on) to switch it on, 0 (or false, no, off) or unset it to switch it off."
    )
