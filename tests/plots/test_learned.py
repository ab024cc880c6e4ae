"""What a network learned, on real weights and leaves: the first layer's filters as one
mosaic and the most active feature maps of each stage, with the model's mode restored."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from tlcourse import plots as vis
from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.models import stage_sequence

pytestmark = pytest.mark.usefixtures("no_open_figures")


def test_first_layer_filters(imagenet_classifier):
    model, _ = imagenet_classifier
    fig = vis.plot_first_layer_filters(model)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert "32 of 32" in fig.axes[0].get_title() and "3x3" in fig.axes[0].get_title()
    mosaic = fig.axes[0].get_images()[0].get_array()
    assert mosaic.shape == (4 * 4 + 1, 8 * 4 + 1, 3)  # 4 rows x 8 filters of 3x3, 1 px gaps
    first = np.asarray(mosaic[1:4, 1:4])  # filter 0, scaled to its own range
    assert first.min() == pytest.approx(0.0) and first.max() == pytest.approx(1.0)
    assert "5 of 32" in vis.plot_first_layer_filters(model, max_filters=5).axes[0].get_title()
    with pytest.raises(InvalidParameterError, match="max_filters"):
        vis.plot_first_layer_filters(model, max_filters=0)
    with pytest.raises(CourseError, match="3 input channels"):
        vis.plot_first_layer_filters(torch.nn.Sequential(torch.nn.Linear(3, 2)))


def test_feature_maps(plant_classifier, leaf_batch):
    model, prep = plant_classifier
    images, _, paths = leaf_batch
    model.train()
    fig = vis.plot_feature_maps(model, images[0], prep)
    assert model.training, "the model's mode is restored"
    assert len(fig.axes) == 7 * 9  # 7 stages x (input + 8 channels)
    assert fig.axes[0].get_title() == "stem\n16×48×48"  # 96 px input, stride 2
    assert fig.axes[6 * 9].get_title() == "top\n1280×3×3"
    assert fig.axes[1].get_title().startswith("ch ")
    with Image.open(paths[0]) as pil:
        small = pil.convert("RGB").resize((64, 64))
    fig = vis.plot_feature_maps(model, small, prep, stages="stage2", channels=4)
    assert len(fig.axes) == 5 and fig.axes[0].get_title() == "stage2\n32×8×8"
    # the channels shown are the most active ones (highest mean activation), in order
    x = prep.normalize(pil_to_tensor(small).unsqueeze(0))
    model.eval()
    with torch.no_grad():
        for name, module in stage_sequence(model).items():
            x = module(x)
            if name == "stage2":
                break
    model.train()
    expected = x[0].mean(dim=(1, 2)).topk(4).indices.tolist()
    assert [int(ax.get_title().split()[1]) for ax in fig.axes[1:]] == expected
    assert np.allclose(fig.axes[1].get_images()[0].get_array(), x[0, expected[0]].numpy())
    with pytest.raises(InvalidParameterError, match="class scores"):
        vis.plot_feature_maps(model, images[0], prep, stages=["head"])
    with pytest.raises(CourseError, match="stage"):
        vis.plot_feature_maps(model, images[0], prep, stages=["stage9"])
    with pytest.raises(InvalidParameterError, match="uint8"):
        vis.plot_feature_maps(model, images[0].float(), prep)
