"""Grad-CAM on real images: shapes and range, state left as found, frozen backbones, and a
cat photo whose heat must sit on the cat rather than the background."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from torchvision.transforms.functional import resize

from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.models import imagenet_categories, load_backbone
from tlcourse.plots import grad_cam, plot_grad_cam

pytestmark = pytest.mark.usefixtures("no_open_figures")


@pytest.fixture(scope="module")
def leaves(leaf_batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Four of the shared leaves, two each of classes 0 and 14, 96 px, uint8 (N, 3, H, W)."""
    images, labels, _ = leaf_batch
    pick = [0, 1, 4, 5]
    return images[pick], labels[pick]


def _modes(model: torch.nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_shape_range_and_not_constant(plant_classifier, leaves):
    model, prep = plant_classifier
    images, _ = leaves
    cam = grad_cam(model, prep.normalize(images))
    assert cam.shape == (4, 96, 96)
    assert cam.device.type == "cpu" and cam.dtype == torch.float32
    assert cam.min() >= 0 and cam.max() <= 1
    for heat in cam:
        assert heat.max() == pytest.approx(1.0) and heat.min() == pytest.approx(0.0)
        assert heat.std() > 0.05, "a heatmap should single out some regions"


def test_frozen_backbone_state_is_left_as_found(plant_classifier, leaves):
    model, prep = plant_classifier
    images, _ = leaves
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = _modes(model)
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        model.train()
        model.features[0][1].eval()  # a mixed state, as a fine-tuning recipe leaves it
        before_modes = _modes(model)
        stats = model.features[0][1].running_mean.clone()
        late_stats = model.features[17].conv[3].running_mean.clone()
        cam = grad_cam(model, prep.normalize(images))
        assert cam.shape == (4, 96, 96) and cam.std() > 0.05
        assert all(not p.requires_grad for p in model.parameters())
        assert all(p.grad is None for p in model.parameters())
        assert _modes(model) == before_modes
        # eval mode inside Grad-CAM: BatchNorm statistics did not move
        assert torch.equal(model.features[0][1].running_mean, stats)
        assert torch.equal(model.features[17].conv[3].running_mean, late_stats)
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        for m, mode in zip(model.modules(), modes):
            m.training = mode


def test_trainable_model_keeps_flags_and_grads(plant_classifier, leaves):
    model, prep = plant_classifier
    images, _ = leaves
    model.eval()
    assert all(p.requires_grad for p in model.parameters())
    grad_cam(model, prep.normalize(images[:1]))
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters()), "Grad-CAM must not leave gradients on weights"
    assert not model.training


def test_module_layer_matches_stage_and_targets_change_map(imagenet_classifier, leaves):
    model, prep = imagenet_classifier
    x = prep.normalize(leaves[0][:2])
    by_stage = grad_cam(model, x, layer="top")
    by_module = grad_cam(model, x, layer=model.features[18])  # the last module of stage "top"
    assert torch.allclose(by_stage, by_module, atol=1e-5)
    default = grad_cam(model, x)
    assert torch.allclose(default, by_stage, atol=1e-5)
    early = grad_cam(model, x, layer="stage2")
    assert early.shape == default.shape and not torch.allclose(early, default, atol=1e-2)
    cat, car = grad_cam(model, x, target_class=281), grad_cam(model, x, target_class=[817, 817])
    assert not torch.allclose(cat, car, atol=1e-2), "different classes draw on different evidence"


def test_invalid_inputs_are_explained(plant_classifier, leaves):
    model, prep = plant_classifier
    images, _ = leaves
    x = prep.normalize(images[:2])
    with pytest.raises(InvalidParameterError, match="normalize"):
        grad_cam(model, images[:2])
    with pytest.raises(InvalidParameterError, match="spatial"):
        grad_cam(model, x, layer="head")
    with pytest.raises(CourseError, match="stage5"):
        grad_cam(model, x, layer="stage6")
    with pytest.raises(InvalidParameterError, match="0..14"):
        grad_cam(model, x, target_class=15)
    with pytest.raises(InvalidParameterError, match="one per image"):
        grad_cam(model, x, target_class=[1, 2, 3])
    with pytest.raises(InvalidParameterError, match=r"one class index, or 2 class indices .*got True\."):
        grad_cam(model, x, target_class=True)
    with pytest.raises(InvalidParameterError, match="not a submodule"):
        grad_cam(model, x, layer=torch.nn.Conv2d(3, 3, 1))


def test_heat_sits_on_the_cat(imagenet_classifier):
    """The ImageNet model's evidence for "cat" is the cat's face, not the background."""
    skdata = pytest.importorskip("skimage.data")
    model, prep = imagenet_classifier
    photo = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)  # 300 x 451, cat face in the middle
    photo = resize(photo, [160, 240], antialias=True)
    x = prep.normalize(photo.unsqueeze(0))
    with torch.no_grad():
        top = int(model.eval()(x).argmax(1))
    assert 281 <= top <= 285, f"expected a cat class, got {imagenet_categories()[top]}"
    heat = grad_cam(model, x, target_class=top)[0]
    h, w = heat.shape
    centre = heat[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    ring = torch.ones(h, w, dtype=torch.bool)
    ring[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = False
    assert centre.mean() > heat[ring].mean() + 0.1


def test_plot_grad_cam_titles_and_colours(plant_classifier, leaves, plant_class_names):
    model, prep = plant_classifier
    images, labels = leaves
    names = [c.replace("_", " ") for c in plant_class_names]
    fig = plot_grad_cam(model, images, prep, names, labels=labels, ncols=2)
    assert len(fig.axes) == 8  # original + overlay per image
    model.eval()
    with torch.no_grad():
        preds = model(prep.normalize(images)).argmax(1)
    for i in range(4):
        original, overlay = fig.axes[2 * i], fig.axes[2 * i + 1]
        assert "".join(original.get_title().split()) == "".join(f"true: {names[labels[i]]}".split())
        assert overlay.get_title().startswith("pred: ")
        assert len(overlay.get_images()) == 2  # picture + heatmap
        wrong = bool(preds[i] != labels[i])
        assert matplotlib.colors.same_color(overlay.title.get_color(), "tab:red" if wrong else "black")
    fig = plot_grad_cam(model, list(images[:3]), prep, names, show_original=False, target_class=4)
    assert len(fig.axes) == 3
    assert all("heat for:" in ax.get_title() or names[4] in ax.get_title() for ax in fig.axes)
    with pytest.raises(InvalidParameterError, match="1000 outputs"):
        plot_grad_cam(load_backbone("mobilenet_v2"), images[:1], prep, names)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_the_gpu_and_returns_cpu(imagenet_classifier, leaves):
    model, prep = imagenet_classifier
    x = prep.normalize(leaves[0][:2])
    on_cpu = grad_cam(model, x)
    model.cuda()
    try:
        on_gpu = grad_cam(model, x.cuda())
        moved = grad_cam(model, x)  # CPU images are moved to the model's device
    finally:
        model.cpu()
    assert on_gpu.device.type == "cpu" and moved.device.type == "cpu"
    assert torch.allclose(on_gpu, on_cpu, atol=2e-2)
    assert np.allclose(moved.numpy(), on_gpu.numpy(), atol=1e-5)
