"""``--grid KEY=V1,V2,...`` (tlcourse/course/sweep/grid.py)."""
from __future__ import annotations

import pytest

from tlcourse.course.sweep.grid import check_grids, combinations, folder_name, parse_grid, parse_grids
from tlcourse.errors import InvalidParameterError


@pytest.mark.parametrize(("text", "expected"), [
    ("seed=0,1,2", ("seed", [0, 1, 2])),
    ("lr=1e-3, 3e-4", ("lr", [0.001, 0.0003])),
    ("augmentation=flip,none", ("augmentation", ["flip", "none"])),
    ("n_per_class=None,8", ("n_per_class", [None, 8])),
    ("sizes=[5,10],[20]", ("sizes", [[5, 10], [20]])),
    ("image_size=128", ("image_size", [128])),
])
def test_values_are_read_like_p_values(text, expected):
    assert parse_grid(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("seed", "expected KEY=V1,V2"),
    ("seed=", "expected KEY=V1,V2"),
    ("2seed=1,2", "KEY a Python name"),
    ("seed=1,1", "lists 1 twice"),
    ("seed=[1,2", "Cannot read the value"),
])
def test_unreadable_grids_are_refused(text, message):
    with pytest.raises(InvalidParameterError, match=message):
        parse_grid(text)


def test_a_key_swept_twice_or_also_fixed_is_refused():
    with pytest.raises(InvalidParameterError, match="given twice"):
        parse_grids(["seed=0,1", "seed=2"])
    with pytest.raises(InvalidParameterError, match="both swept"):
        parse_grids(["seed=0,1"], fixed=["seed"])
    with pytest.raises(InvalidParameterError, match="at least one --grid"):
        parse_grids([])
    with pytest.raises(InvalidParameterError, match="not a non-empty list"):
        check_grids({"seed": []})
    with pytest.raises(InvalidParameterError, match="not a non-empty list"):
        check_grids({"backbone": "mobilenet_v2"})


def test_one_and_1_are_different_values():
    assert parse_grid("name=1,'1'") == ("name", [1, "1"])


def test_combinations_are_the_cartesian_product_in_grid_order():
    combos = combinations({"seed": [0, 1], "image_size": [128, 160]})
    assert combos == [{"seed": 0, "image_size": 128}, {"seed": 0, "image_size": 160},
                      {"seed": 1, "image_size": 128}, {"seed": 1, "image_size": 160}]


def test_folder_names_are_file_name_safe_and_distinct():
    a = folder_name("07_x", {"name": "a/../b c"}, 0)
    b = folder_name("07_x", {"name": 1}, 1)
    c = folder_name("07_x", {"name": "1"}, 2)
    assert a == "07_x-name_a_._b_c-t000"
    assert len({a, b, c}) == 3
