"""The one YAML loader (tlcourse/_yaml.py): safe, and a key written twice is refused."""
from __future__ import annotations

import pytest
import yaml

from tlcourse import _yaml
from tlcourse.errors import CourseError, InvalidParameterError


def test_plain_yaml_loads_as_with_safe_load():
    text = "a: 1\nb: [x, {c: 2.5}]\nd: no\n"
    assert _yaml.load_text(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    ("text", "key", "first", "second"),
    [("a: 1\nb: 2\na: 3\n", "a", 1, 3),
     ("outer:\n  x: 1\n  inner: {y: 1, y: 2}\n", "y", 3, 3),
     ("- {q: 1}\n- q: 1\n  id: 2\n  q: 2\n", "q", 2, 4),
     ("1: one\n1: uno\n", 1, 1, 2)],
    ids=["top", "nested flow", "in a list", "int key"],
)
def test_a_key_written_twice_is_refused_naming_it_and_both_lines(text, key, first, second):
    with pytest.raises(_yaml.DuplicateKeyError) as info:
        _yaml.load_text(text)
    assert (info.value.key, info.value.first_line, info.value.line) == (key, first, second)
    assert f"the key {key!r} appears twice (line {first} and line {second})" in str(info.value)


def test_a_merged_key_may_be_overridden_but_not_written_twice():
    text = "base: &b {lr: 0.1, seed: 1}\nrun:\n  <<: *b\n  lr: 0.5\n"
    assert _yaml.load_text(text)["run"] == {"lr": 0.5, "seed": 1}
    with pytest.raises(_yaml.DuplicateKeyError):
        _yaml.load_text(text + "  lr: 0.7\n")


def test_nothing_in_a_file_executes():
    with pytest.raises(yaml.YAMLError):
        _yaml.load_text("!!python/object/apply:os.system ['echo pwned']\n")


def test_load_file_names_the_file_key_and_lines_and_keeps_the_callers_error(tmp_path):
    path = tmp_path / "bank.yaml"
    path.write_text("q1:\n  answer: b\n  answer: c\n")
    before = path.read_bytes()
    with pytest.raises(InvalidParameterError) as info:
        _yaml.load_file(path, error=InvalidParameterError)
    assert str(info.value) == (
        f"{path}, line 3: the key 'answer' appears twice (line 2 and line 3). YAML would "
        "silently keep only the last one; delete one of the two 'answer' lines and run again.")
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"a: [1, 2\n", "is not valid YAML"), (b"a: \xff\xfe\n", "Cannot read"),
     (b"!!python/name:os.system\n", "is not valid YAML")],
    ids=["broken", "not utf-8", "python tag"],
)
def test_load_file_turns_every_problem_into_one_course_error(tmp_path, content, expected):
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    with pytest.raises(CourseError, match=expected) as info:
        _yaml.load_file(path)
    assert str(path) in str(info.value)


def test_a_loader_that_is_not_the_course_one_is_refused():
    # The duplicate check lives in _yaml.SafeLoader: a plain loader would silently skip it.
    with pytest.raises(TypeError, match="tlcourse._yaml.SafeLoader"):
        _yaml.load_text("a: 1", yaml.SafeLoader)
