"""check_parameters: the first code cell of every lesson (tlcourse/course/params.py)."""
from __future__ import annotations

import pytest

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.models import available_backbones
from tlcourse.course.params import COMMON_PARAMETERS, check_parameters, parameter_problems

GOOD = dict(
    backbone="mobilenet_v2",
    image_size=64,
    epochs=1,
    batch_size=32,
    n_per_class=8,
    seed=0,
    device="cpu",
    lr=1e-3,
    max_images=16,
    dataset="plantvillage",
    data_dir=None,
)


def test_valid_parameters_are_returned_unchanged():
    result = check_parameters(**GOOD)
    assert result == GOOD
    assert set(GOOD) == set(COMMON_PARAMETERS)


def test_unknown_names_are_notebook_specific_and_pass_through():
    result = check_parameters(epochs=2, probe_stage="stage3", weird=object)
    assert result["probe_stage"] == "stage3" and result["weird"] is object


@pytest.mark.parametrize(
    ("name", "value", "range_text"),
    [
        ("epochs", 0, ">= 1"),
        ("epochs", 2.0, ">= 1"),
        ("epochs", True, ">= 1"),
        ("epochs", None, ">= 1"),
        ("image_size", 16, "32 to 1024"),
        ("image_size", 2240, "32 to 1024"),
        ("image_size", "64", "32 to 1024"),
        ("batch_size", 0, ">= 1"),
        ("n_per_class", 0, "or None"),
        ("seed", -1, ">= 0"),
        ("device", "gpu", "'cuda:N'"),
        ("device", "cuda:x", "'cuda:N'"),
        ("lr", 0, "> 0"),
        ("lr", -1e-3, "> 0"),
        ("lr", float("nan"), "> 0"),
        ("lr", "1e-3", "> 0"),
        ("max_images", 0, "or None"),
        ("backbone", "resnet", "mobilenet_v2"),
        ("dataset", "plant_village", "tlcourse data list"),
        ("dataset", "/no/such/photos", "does not exist"),
        ("data_dir", "/no/such/photos", "absolute path is safest"),
        ("data_dir", 3, "one sub-folder of photos per class"),
    ],
)
def test_bad_values_name_parameter_value_range_and_fix(name, value, range_text):
    with pytest.raises(InvalidParameterError) as info:
        check_parameters(**{**GOOD, name: value})
    message = str(info.value)
    assert f"{name}={value!r}" in message
    assert range_text in message
    assert "parameters" in message and f"-p {name}=" in message
    assert isinstance(info.value, CourseError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("name", "value"),
    [("n_per_class", None), ("max_images", None), ("device", "cuda:1"), ("device", "AUTO"),
     ("device", "mps"), ("lr", 1), ("image_size", 32), ("image_size", 1024), ("seed", 0)],
)
def test_edge_values_accepted(name, value):
    assert check_parameters(**{name: value}) == {name: value}


def test_every_available_backbone_is_accepted():
    for name in available_backbones():
        check_parameters(backbone=name)


def test_all_problems_reported_at_once():
    problems = parameter_problems({"epochs": 0, "seed": -2, "lr": 0.1, "note": "x"})
    assert [p.split("=")[0] for p in problems] == ["epochs", "seed"]
    with pytest.raises(InvalidParameterError, match="epochs=0.*seed=-2"):
        check_parameters(epochs=0, seed=-2, lr=0.1)


def test_a_learning_rate_too_large_for_a_float_is_refused_not_a_crash():
    # float(10**400) overflows: the check once crashed with OverflowError instead of deciding.
    assert parameter_problems({"lr": 10**400}) == [
        f"lr={10**400!r} is not valid: lr must be a number > 0 (e.g. 1e-3)."]
    with pytest.raises(InvalidParameterError, match="lr must be a number > 0"):
        check_parameters(lr=10**400)
    assert parameter_problems({"lr": float("nan")}) == [
        "lr=nan is not valid: lr must be a number > 0 (e.g. 1e-3)."]


def test_dataset_parameters_take_a_folder_and_the_runner_makes_it_absolute(tmp_path, monkeypatch):
    from tlcourse.course.params import absolute_folders

    (tmp_path / "photos").mkdir()
    assert check_parameters(dataset=str(tmp_path / "photos"), data_dir=str(tmp_path / "photos"))
    monkeypatch.chdir(tmp_path)
    assert absolute_folders({"dataset": "photos", "data_dir": "photos", "epochs": 1}) == {
        "dataset": str(tmp_path / "photos"), "data_dir": str(tmp_path / "photos"), "epochs": 1}
    assert absolute_folders({"dataset": "plantvillage"}) == {"dataset": "plantvillage"}
    with pytest.raises(InvalidParameterError, match="is not a folder"):
        check_parameters(dataset=str(__file__))
