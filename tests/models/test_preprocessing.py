"""The preprocessing of each backbone: torchvision's own transforms, and other image sizes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tlcourse.errors import InvalidParameterError
from tlcourse.models import get_spec


def test_preprocessing_matches_torchvision_weights_transforms():
    from torchvision.models import MobileNet_V2_Weights

    ours = get_spec("mobilenet_v2").preprocessing.transforms()
    theirs = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    img = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert torch.allclose(ours(img), theirs(img))
    at128 = get_spec("mobilenet_v2").preprocessing.at(128)
    assert (at128.crop_size, at128.resize_size) == (128, 146)


def test_bad_image_size():
    for bad in (0, 31, True, 64.0):
        with pytest.raises(InvalidParameterError) as info:
            get_spec("mobilenet_v2").preprocessing.at(bad)
        assert str(info.value) == f"image_size must be an integer >= 32, got {bad!r}."


def test_image_size_may_be_a_numpy_integer():
    prep = get_spec("mobilenet_v2").preprocessing
    at128 = prep.at(np.int64(128))
    assert at128 == prep.at(128) and type(at128.crop_size) is int
