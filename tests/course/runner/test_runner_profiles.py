"""notebooks/profiles.yaml, read and checked (tlcourse/course/runner/profiles.py)."""
from __future__ import annotations

import pytest

from name_errors import assert_unknown_name_lists_the_valid_ones
from runner_fixture import REPO
from tlcourse.course.cli import main
from tlcourse.course.runner import load_profiles, prepare_run
from tlcourse.errors import CourseError


def test_profile_errors_fail_fast(course):
    bad = course / "bad.yaml"
    cases = {
        "smoke:\n  defaults:\n    epocs: 1\n": "Did you mean 'epochs'?",
        "smoke:\n  notebooks:\n    '07_*': {epochs: 1}\n": "'07_*' matches no notebook",
        "smoke:\n  notebooks:\n    '00_*': {lr: 1.0}\n": "sets 'lr', which none of 00_boom.ipynb",
        "smoke:\n  defaults:\n    epochs: one\n": "got 'one' (str) from profile 'smoke'",
        "smoke:\n  timeout: -5\n": "timeout -5",
        "smoke:\n  epochs: 1\n": "unknown key(s) 'epochs'",
    }
    for text, expected in cases.items():
        bad.write_text(text)
        with pytest.raises(CourseError) as info:
            prepare_run(course, profile="smoke", profiles_file=bad)
        assert expected in str(info.value), text
    # a common parameter no fixture notebook declares is fine in defaults (lessons may add it)
    bad.write_text("smoke:\n  defaults:\n    image_size: 64\n")
    assert prepare_run(course, profile="smoke", profiles_file=bad).notebooks


def _mistyped_profile() -> None:
    prepare_run(REPO, profile="smok")


def test_unknown_profile_lists_the_valid_ones() -> None:
    assert_unknown_name_lists_the_valid_ones(_mistyped_profile, "profile", ["classroom", "full", "smoke"])


def test_course_profiles_file_is_valid():
    profiles = load_profiles(REPO / "notebooks" / "profiles.yaml")
    assert {"smoke", "classroom", "full"} <= set(profiles)
    assert profiles["smoke"].defaults["image_size"] == 64 and profiles["smoke"].timeout
    assert profiles["classroom"].defaults == {} and profiles["full"].timeout is None
    from tlcourse.course.params import parameter_problems

    for profile in profiles.values():
        assert parameter_problems(profile.defaults) == [], profile.name


_TWICE = {
    "profile": ("smoke:\n  timeout: 60\nclassroom: {}\nsmoke:\n  timeout: 5\n", "'smoke'", 1, 4),
    "defaults": ("smoke:\n  defaults:\n    epochs: 1\n    seed: 3\n    epochs: 50\n",
                 "'epochs'", 3, 5),
    "notebooks glob": ("smoke:\n  notebooks:\n    '01_*': {name: a}\n    '01_*': {name: b}\n",
                       "'01_*'", 3, 4),
}


@pytest.mark.parametrize("case", list(_TWICE))
def test_a_key_written_twice_in_a_profiles_file_is_refused(course, monkeypatch, capsys, case):
    # YAML itself keeps the last of two equal keys without a word: smoke would run 50 epochs.
    text, key, first, second = _TWICE[case]
    profiles = course / "notebooks" / "profiles.yaml"
    profiles.write_text(text)
    with pytest.raises(CourseError) as info:
        prepare_run(course, profile="smoke")
    assert str(info.value) == (
        f"{profiles}, line {second}: the key {key} appears twice (line {first} and line "
        f"{second}). YAML would silently keep only the last one; delete one of the two {key} "
        "lines and run again.")
    monkeypatch.chdir(course)  # and on the command line: one line, nothing made
    assert main(["run", "--profile", "smoke", "--out", str(course / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"tlcourse run: {info.value}\n"
    assert profiles.read_text() == text and not (course / "out").exists()


def test_keys_given_by_a_yaml_merge_may_be_overridden(course):
    # `<<: *smoke` then `epochs: 2` is how YAML says "like smoke, but": not a duplicate.
    profiles = course / "profiles.yaml"
    profiles.write_text("smoke:\n  defaults: &base\n    epochs: 1\n    seed: 3\n"
                        "classroom:\n  defaults:\n    <<: *base\n    epochs: 2\n")
    assert load_profiles(profiles)["classroom"].defaults == {"epochs": 2, "seed": 3}
