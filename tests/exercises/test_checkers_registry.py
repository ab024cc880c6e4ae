"""The checker registry: every lesson's checkers are registered by name, and only names are looked up."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.exercises import checkers
from tlcourse.exercises.checkers import CHECKERS, get_checker, register_checker
from tlcourse.exercises.checkers.common import value_equal

# One checker module per lesson notebook (notebooks/NN_*.ipynb), so a new lesson needs its module.
_LESSONS = sorted(p.name[:2] for p in (Path(__file__).parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LESSON_MODULES = [f"tlcourse.exercises.checkers.lesson{n}" for n in _LESSONS]


def test_every_lesson_module_registers_its_checkers_under_their_own_names():
    for name in LESSON_MODULES + ["tlcourse.exercises.checkers.common"]:
        module = importlib.import_module(name)
        own = [getattr(module, n) for n in module.__all__]
        assert own, f"{name} holds no checker"
        for fn in own:
            assert CHECKERS[fn.__name__] is fn, f"{name}.{fn.__name__} is not registered"
    assert {fn.__module__ for fn in CHECKERS.values()} == set(LESSON_MODULES) | {"tlcourse.exercises.checkers.common"}


def test_registry_is_complete_after_importing_the_package_alone():
    # Any checker named by a bank is found without importing its lesson module by hand.
    assert {"trainable_stages", "layer_decay_lrs", "seed_spread", "best_under_budget"} <= set(checkers.CHECKERS)


@pytest.mark.parametrize(
    "name, words",
    [
        ("frozen", "Unknown checker 'frozen'"),
        ("tlcourse.exercises.checkers_domains:seed_spread", "is a module path.*write `checker: seed_spread`"),
        ("os:system", "is a module path.*registered names"),
    ],
)
def test_unknown_names_and_module_paths_are_refused(name, words):
    with pytest.raises(CourseError, match=words):
        get_checker(name)


def test_register_checker_refuses_a_taken_name_and_a_name_no_bank_could_write():
    @register_checker(name="_test_always_right")
    def always(value):
        return value_equal(value, value)

    try:
        assert get_checker("_test_always_right") is always
        with pytest.raises(CourseError, match="already registered"):
            register_checker(lambda value: None, name="_test_always_right")
    finally:
        CHECKERS.pop("_test_always_right")
    with pytest.raises(InvalidParameterError, match="must be a Python identifier"):
        register_checker(lambda value: None, name="lesson05.always")
    assert "lesson05.always" not in CHECKERS
