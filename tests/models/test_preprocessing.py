"""The preprocessing of each backbone: torchvision's own transforms, and other image sizes."""
from __future__ import annotations

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
    with pytest.raises(InvalidParameterError, match="image_size"):
        get_spec("mobilenet_v2").preprocessing.at(0)
