"""Synthetic shifts on real leaf photos: shapes, repeatability, strength 0 = no change, what each
shift does to the pixels, and the errors for wrong input."""
from __future__ import annotations

import pytest
import torch

from tlcourse.data import load_dataset
from tlcourse.data import shifts
from tlcourse.errors import CourseError


@pytest.fixture(scope="module")
def leaves(shared_data) -> torch.Tensor:
    """Six real PlantVillage photos at 64 px, uint8."""
    data = load_dataset("plantvillage", 64, progress=False)
    return data.images[torch.arange(0, 2250, 375)].clone()


@pytest.mark.parametrize("name", list(shifts.SHIFTS))
def test_each_shift_keeps_shape_is_repeatable_and_leaves_its_input_alone(leaves, name) -> None:
    before = leaves.clone()
    out = shifts.apply_shift(leaves, name, seed=3)
    assert out.shape == leaves.shape and out.dtype == torch.uint8
    assert torch.equal(leaves, before), "a shift must not modify the images it was given"
    assert not torch.equal(out, leaves), f"{name} changed nothing"
    assert torch.equal(out, shifts.apply_shift(leaves, name, seed=3))
    one = shifts.apply_shift(leaves[0], name, seed=3)  # a single (3, H, W) image works too
    assert one.shape == leaves[0].shape


@pytest.mark.parametrize("name", list(shifts.SHIFTS))
def test_strength_zero_is_the_photo_and_more_strength_moves_it_further(leaves, name) -> None:
    assert torch.equal(shifts.apply_shift(leaves, name, 0.0, seed=1), leaves)
    diff = [float((shifts.apply_shift(leaves, name, s, seed=1).float() - leaves.float()).abs().mean())
            for s in (0.3, 1.0)]
    assert 0 < diff[0] < diff[1], f"{name}: mean change {diff} should grow with strength"


def test_what_each_shift_does_to_the_pixels(leaves) -> None:
    x = leaves.float()
    dark = shifts.low_light(leaves).float()
    assert dark.mean() < 0.45 * x.mean()
    blurred = shifts.blur(leaves).float()
    detail = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert detail(blurred) < 0.6 * detail(x)
    covered = (shifts.occlusion(leaves) != leaves).any(1).float().mean((1, 2))
    assert torch.all(covered <= shifts.OCCLUSION_AREA + 0.02) and covered.mean() > 0.1
    mask = shifts.leaf_mask(leaves)
    assert 0.2 < float(mask.float().mean()) < 0.95, "the leaf should cover part of a PlantVillage photo, not all"
    swapped = shifts.background(leaves)
    assert torch.equal(swapped.masked_select(mask), leaves.masked_select(mask)), "the leaf's pixels must be kept"
    assert not torch.equal(swapped.masked_select(~mask), leaves.masked_select(~mask))
    worse = [float((shifts.jpeg(leaves, s).float() - x).abs().mean()) for s in (0.5, 1.0)]
    assert worse[0] < worse[1]


def test_random_shifts_is_seeded_and_shifts_about_p_of_the_images(leaves) -> None:
    many = leaves.repeat(20, 1, 1, 1)  # 120 images
    a = shifts.random_shifts(many, seed=0, p=0.5)
    assert torch.equal(a, shifts.random_shifts(many, seed=0, p=0.5))
    assert not torch.equal(a, shifts.random_shifts(many, seed=1, p=0.5))
    changed = (a != many).flatten(1).any(1).float().mean()
    assert 0.3 < float(changed) < 0.7
    assert torch.equal(shifts.random_shifts(many, seed=0, p=0.0), many)


@pytest.mark.parametrize("bad", [
    torch.zeros(2, 3, 8, 8),  # float: already normalised
    torch.zeros(2, 1, 8, 8, dtype=torch.uint8),  # greyscale
    torch.zeros(8, 8, dtype=torch.uint8),
    [[0, 1]],
])
def test_images_that_are_not_uint8_rgb_are_refused(bad) -> None:
    with pytest.raises(CourseError, match="uint8 RGB"):
        shifts.blur(bad)


def test_bad_names_and_strengths_are_refused(leaves) -> None:
    with pytest.raises(CourseError, match="fog"):
        shifts.apply_shift(leaves, "fog")
    for strength in (-0.1, 1.5, True, float("nan"), "1"):
        with pytest.raises(CourseError, match="strength"):
            shifts.apply_shift(leaves, "blur", strength)
    with pytest.raises(CourseError, match="probability"):
        shifts.random_shifts(leaves, p=2)
