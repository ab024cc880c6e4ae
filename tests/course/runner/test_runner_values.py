"""The runner's value dialect (tlcourse/course/runner/values.py): -p values and profiles as a
Python user means them."""
from __future__ import annotations

import pytest

from tlcourse.course.runner import parse_assignment, parse_value
from tlcourse.errors import InvalidParameterError


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("1e-4", 1e-4), ("0.5", 0.5), ("efficientnet_lite0", "efficientnet_lite0"),
     ("None", None), ("null", None), ("true", True), ("no", "no"), ("010", "010"),
     ("2024-01-01", "2024-01-01"), ("[64, 128]", [64, 128]), ("cuda:0", "cuda:0")],
)
def test_parse_value_reads_values_as_python_users_mean_them(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_parse_assignment_requires_key_value():
    assert parse_assignment("lr = 1e-4") == ("lr", 1e-4)
    for bad in ("epochs", "2x=1", "=3"):
        with pytest.raises(InvalidParameterError, match="KEY=VALUE"):
            parse_assignment(bad)


def test_a_value_with_a_key_written_twice_is_refused():
    with pytest.raises(InvalidParameterError) as info:
        parse_assignment("lrs={head: 0.01, body: 0.001, head: 0.1}")
    assert str(info.value).startswith(
        "Cannot read the value '{head: 0.01, body: 0.001, head: 0.1}': the key 'head' appears "
        "twice (line 1 and line 1). Values are YAML, e.g. -p epochs=3")
