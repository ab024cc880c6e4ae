"""On/off environment switches (tlcourse/_env.py), read one way by every part of the course."""
from __future__ import annotations

import pytest

from tlcourse._env import HEADLESS_ENV, env_flag
from tlcourse.course import results
from tlcourse.errors import CourseError


@pytest.mark.parametrize("value", ["1", "true", "True", " yes ", "ON", "on"])
def test_yes_words_switch_on(monkeypatch, value):
    monkeypatch.setenv("TLCOURSE_SOME_FLAG", value)
    assert env_flag("TLCOURSE_SOME_FLAG") is True


@pytest.mark.parametrize("value", [None, "", "  ", "0", "false", "No", "OFF"])
def test_no_words_and_unset_switch_off(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("TLCOURSE_SOME_FLAG", raising=False)
    else:
        monkeypatch.setenv("TLCOURSE_SOME_FLAG", value)
    assert env_flag("TLCOURSE_SOME_FLAG") is False


@pytest.mark.parametrize("value", ["ture", "2", "enabled", "y es"])
def test_anything_else_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("TLCOURSE_EXAM", value)
    with pytest.raises(CourseError) as info:
        env_flag("TLCOURSE_EXAM")
    assert str(info.value).startswith(f"The environment variable TLCOURSE_EXAM={value!r} is "
                                      "neither on nor off: set it to 1")


def test_results_reads_headless_like_the_exercises(monkeypatch):
    # results.headless() once took "on" as off while the exercises took it as on.
    assert results.HEADLESS_ENV == HEADLESS_ENV
    monkeypatch.setenv(HEADLESS_ENV, "on")
    assert results.headless() is True
    monkeypatch.setenv(HEADLESS_ENV, "off")
    assert results.headless() is False
    monkeypatch.setenv(HEADLESS_ENV, "maybe")
    with pytest.raises(CourseError, match="TLCOURSE_HEADLESS='maybe'"):
        results.headless()
