"""Seeding (tlcourse/device.py): the seed's type is checked before anything is seeded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tlcourse.device import seed_everything
from tlcourse.errors import InvalidParameterError


def test_a_numpy_seed_seeds_like_the_same_int():
    a = torch.rand(3, generator=seed_everything(np.int64(7)))
    b = torch.rand(3, generator=seed_everything(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [True, -1, 1.0, "7"])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(InvalidParameterError) as info:
        seed_everything(bad)
    assert str(info.value) == f"seed must be an integer >= 0, got {bad!r}."
