"""The promise every name lookup of the course keeps (backbones, datasets, run profiles): an
unknown name is refused listing the valid ones and suggesting the nearest."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from tlcourse.errors import CourseError


def assert_unknown_name_lists_the_valid_ones(call: Callable[[], object], kind: str, valid: list[str]) -> None:
    with pytest.raises(CourseError) as info:
        call()
    message = str(info.value)
    assert f"Unknown {kind}" in message
    for name in valid:
        assert name in message, (name, message)
    assert "Did you mean" in message  # mobilnet_v2 -> mobilenet_v2, plant_village -> plantvillage
