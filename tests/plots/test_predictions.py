"""Images, labels and predictions on real leaves: the image grid, top-k predictions of the
ImageNet model, the confusion matrix with 15 long class names, and the misclassified images
most confident first."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import same_color

from tlcourse import plots as vis
from tlcourse.errors import InvalidParameterError
from tlcourse.models import imagenet_categories

pytestmark = pytest.mark.usefixtures("no_open_figures")


def _flat(title: str) -> str:
    return "".join(title.split())


def test_confusion_matrix_with_fifteen_long_names(plant_class_names):
    names = plant_class_names
    y_true = np.repeat(np.arange(15), 4)
    y_pred = y_true.copy()
    y_pred[::4] = (y_pred[::4] + 1) % 15  # one of each class's four images is wrong
    fig = vis.plot_confusion_matrix(y_true, y_pred, names)
    assert len(fig.axes) == 2  # matrix + colour bar
    ax = fig.axes[0]
    assert "75.0% correct on 60 images" in ax.get_title()
    assert len(ax.texts) == 30 and sorted({t.get_text() for t in ax.texts}) == ["1", "3"]
    matrix = np.asarray(ax.get_images()[0].get_array())
    assert np.allclose(matrix.sum(1), 1.0) and matrix[0, 0] == pytest.approx(0.75)
    assert all(t.get_rotation() == 45 for t in ax.get_xticklabels())
    raw = vis.plot_confusion_matrix(y_true, y_pred, names, normalize=False).axes[0]
    assert np.asarray(raw.get_images()[0].get_array())[0, 0] == 3
    with pytest.raises(InvalidParameterError, match="outside 0..14"):
        vis.plot_confusion_matrix([0, 15], [0, 1], names)
    with pytest.raises(InvalidParameterError, match="2 images"):
        vis.plot_confusion_matrix([0, 1], [0, 1, 2], names)
    with pytest.raises(InvalidParameterError, match="empty; nothing to count"):
        vis.plot_confusion_matrix([], [], names)


def test_misclassified_most_confident_first(leaf_batch, plant_class_names):
    images, labels, _ = leaf_batch
    preds = labels.clone()
    preds[1], preds[4] = 6, 6  # two mistakes, both "predicted" as class 6
    probs = torch.full((6, 15), 0.01)
    probs[torch.arange(6), preds] = 0.86
    probs[4, 6] = 0.96
    probs = probs / probs.sum(1, keepdim=True)
    fig = vis.plot_misclassified(images, labels, preds, plant_class_names, probs=probs)
    assert len(fig.axes) == 2
    first, second = (_flat(ax.get_title()) for ax in fig.axes)
    assert first.startswith(_flat(f"true: {plant_class_names[14]}")) and _flat(plant_class_names[6]) in first
    assert second.startswith(_flat(f"true: {plant_class_names[0]}"))
    assert all(same_color(ax.title.get_color(), "tab:red") for ax in fig.axes)
    none_wrong = vis.plot_misclassified(images, labels, labels, plant_class_names)
    assert "No misclassified" in none_wrong.axes[0].texts[0].get_text()
    with pytest.raises(InvalidParameterError, match="logits"):
        vis.plot_misclassified(images, labels, preds, plant_class_names, probs=torch.randn(6, 15) * 5)


def test_image_grid_and_predictions(leaf_batch, imagenet_classifier, plant_class_names):
    images, labels, _ = leaf_batch
    fig = vis.plot_image_grid(images, labels, plant_class_names, ncols=4)
    assert len(fig.axes) == 6
    assert [_flat(ax.get_title()) for ax in fig.axes] == [_flat(plant_class_names[i]) for i in labels]
    assert "6 of 6" in fig._suptitle.get_text()
    assert len(vis.plot_image_grid(list(images), None, None, max_images=3).axes) == 3
    with pytest.raises(InvalidParameterError, match="uint8"):
        vis.plot_image_grid(images.float() / 255, labels, plant_class_names)

    model, prep = imagenet_classifier
    with torch.no_grad():
        probs = model(prep.normalize(images[:3])).softmax(1)
    fig = vis.show_predictions(images[:3], probs, imagenet_categories(), k=5)
    assert len(fig.axes) == 6
    bars = fig.axes[1]
    assert len(bars.patches) == 5
    heights = [p.get_width() for p in bars.patches]
    assert heights == sorted(heights, reverse=True) and heights[0] == pytest.approx(float(probs[0].max()))
    top1 = imagenet_categories()[int(probs[0].argmax())]
    assert fig.axes[0].get_title().startswith(f"top-1: {top1}"[:20])
    with pytest.raises(InvalidParameterError, match="softmax"):
        vis.show_predictions(images[:3], probs.log(), imagenet_categories())
