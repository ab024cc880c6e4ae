"""The course's plots on real inputs: each returns a Figure with the panels, titles and
marks a learner relies on, leaves no figure open in pyplot, and explains bad input."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import same_color  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms.functional import pil_to_tensor  # noqa: E402

from tlcourse import visualisation as vis  # noqa: E402
from tlcourse.errors import CourseError, InvalidParameterError  # noqa: E402
from tlcourse.models import create_model, get_spec, imagenet_categories, load_backbone, stage_sequence  # noqa: E402

DATA = Path(os.environ.get("TLCOURSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PLANTS = DATA / "plantvillage"
CLASSES = sorted(p.name for p in PLANTS.iterdir() if p.is_dir()) if PLANTS.is_dir() else []


def _flat(title: str) -> str:
    return "".join(title.split())


@pytest.fixture(autouse=True)
def _no_open_figures():
    yield
    assert plt.get_fignums() == [], "plots must hand their figures to the caller, not leave them in pyplot"
    plt.close("all")


@pytest.fixture(scope="module")
def leaves() -> tuple[torch.Tensor, torch.Tensor, list[Path]]:
    """Six PlantVillage leaves from three classes, 96 px, uint8 (N, 3, H, W)."""
    if len(CLASSES) != 15:
        pytest.skip(f"PlantVillage test images not found under {PLANTS} (set TLCOURSE_DATA)")
    images, labels, paths = [], [], []
    for label in (0, 6, 14):
        for path in sorted((PLANTS / CLASSES[label]).glob("*.jpg"))[:2]:
            with Image.open(path) as img:
                images.append(pil_to_tensor(img.convert("RGB").resize((96, 96), Image.BILINEAR)))
            labels.append(label)
            paths.append(path)
    return torch.stack(images), torch.tensor(labels), paths


@pytest.fixture(scope="module")
def plant_model():
    return create_model("mobilenet_v2", 15)


@pytest.fixture(scope="module")
def imagenet():
    return load_backbone("mobilenet_v2").eval(), get_spec("mobilenet_v2").preprocessing


# ----------------------------------------------------------------------------- what was learned


def test_first_layer_filters(imagenet):
    model, _ = imagenet
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


def test_feature_maps(plant_model, leaves):
    model, prep = plant_model
    images, _, paths = leaves
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


# ----------------------------------------------------------------------------- training curves


def _records(losses, accs, val=True):
    out = []
    for epoch, (loss, acc) in enumerate(zip(losses, accs), start=1):
        r = {"epoch": epoch, "train_loss": loss, "train_acc": acc, "lr": 1e-3, "seconds": 2.0}
        if val:
            r.update(val_loss=loss + 0.1 + (0.3 if epoch == len(losses) else 0.0), val_acc=acc - 0.05)
        out.append(r)
    return out


def test_history_compares_runs_and_stars_best_epoch():
    scratch = SimpleNamespace(records=_records([2.5, 2.0, 1.6, 1.4], [0.2, 0.35, 0.5, 0.6]), label="")
    pretrained = _records([1.0, 0.5, 0.3, 0.2], [0.7, 0.85, 0.9, 0.95])
    fig = vis.plot_history(scratch, pd.DataFrame(pretrained), labels=["scratch", "pretrained"])
    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch" and "loss" in loss_ax.get_ylabel()
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert {"scratch: train", "scratch: validation", "pretrained: train", "pretrained: validation"} <= set(labels)
    stars = [line for line in loss_ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 2
    # last epoch's val loss jumps, so the lowest validation loss is at epoch 3 for both runs
    assert [float(s.get_xdata()[0]) for s in stars] == [3.0, 3.0]
    assert float(stars[1].get_ydata()[0]) == pytest.approx(0.4)
    acc_stars = [line for line in acc_ax.get_lines() if line.get_marker() == "*"]
    assert float(acc_stars[0].get_ydata()[0]) == pytest.approx(0.45)


def test_history_forms_and_errors():
    frame = pd.DataFrame(_records([1.0, 0.8], [0.5, 0.6], val=False)).set_index("epoch")
    fig = vis.plot_history(frame, metrics="lr")
    assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "log"
    fig = vis.plot_history(_records([1.0, 0.8], [0.5, 0.6], val=False))
    assert not [line for line in fig.axes[0].get_lines() if line.get_marker() == "*"]
    fig, ax = plt.subplots()
    plt.close(fig)
    assert vis.plot_history(_records([1.0, 0.8], [0.5, 0.6]), metrics=["acc"], ax=ax) is fig
    with pytest.raises(InvalidParameterError, match="Available keys"):
        vis.plot_history(_records([1.0], [0.5]), metrics=["f1"])
    with pytest.raises(InvalidParameterError, match="one label per run"):
        vis.plot_history(_records([1.0], [0.5]), labels=["a", "b"])
    with pytest.raises(InvalidParameterError, match="empty"):
        vis.plot_history([])


# ----------------------------------------------------------------------------- errors


def test_confusion_matrix_with_fifteen_long_names():
    names = CLASSES or [f"Tomato__Tomato_YellowLeaf__Curl_Virus_{i}" for i in range(15)]
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


def test_misclassified_most_confident_first(leaves):
    images, labels, _ = leaves
    preds = labels.clone()
    preds[1], preds[4] = 6, 6  # two mistakes, both "predicted" as class 6
    probs = torch.full((6, 15), 0.01)
    probs[torch.arange(6), preds] = 0.86
    probs[4, 6] = 0.96
    probs = probs / probs.sum(1, keepdim=True)
    fig = vis.plot_misclassified(images, labels, preds, CLASSES, probs=probs)
    assert len(fig.axes) == 2
    first, second = (_flat(ax.get_title()) for ax in fig.axes)
    assert first.startswith(_flat(f"true: {CLASSES[14]}")) and _flat(CLASSES[6]) in first
    assert second.startswith(_flat(f"true: {CLASSES[0]}"))
    assert all(same_color(ax.title.get_color(), "tab:red") for ax in fig.axes)
    none_wrong = vis.plot_misclassified(images, labels, labels, CLASSES)
    assert "No misclassified" in none_wrong.axes[0].texts[0].get_text()
    with pytest.raises(InvalidParameterError, match="logits"):
        vis.plot_misclassified(images, labels, preds, CLASSES, probs=torch.randn(6, 15) * 5)


def test_image_grid_and_predictions(leaves, imagenet):
    images, labels, _ = leaves
    fig = vis.plot_image_grid(images, labels, CLASSES, ncols=4)
    assert len(fig.axes) == 6
    assert [_flat(ax.get_title()) for ax in fig.axes] == [_flat(CLASSES[i]) for i in labels]
    assert "6 of 6" in fig._suptitle.get_text()
    assert len(vis.plot_image_grid(list(images), None, None, max_images=3).axes) == 3
    with pytest.raises(InvalidParameterError, match="uint8"):
        vis.plot_image_grid(images.float() / 255, labels, CLASSES)

    model, prep = imagenet
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


# ----------------------------------------------------------------------------- transfer recipes


def test_stage_diagram_shows_frozen_partial_and_bn_trap(plant_model):
    model, _ = plant_model
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        for name, p in model.named_parameters():
            if name.startswith(("features.0.", "features.1.", "features.2.", "features.3.")):
                p.requires_grad_(False)  # stem and stage1 frozen
        model.features[12].conv[0][0].weight.requires_grad_(False)  # stage4 partly frozen
        model.train()
        summary = vis.stage_summary(model)
        assert [summary[s]["status"] for s in ("stem", "stage1", "stage4", "head")] == [
            "frozen", "frozen", "partial", "trainable"]
        assert sum(r["params"] for r in summary.values()) == sum(p.numel() for p in model.parameters())
        fig = vis.plot_stage_diagram(model)
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_yticklabels()] == list(summary)
        assert ax.get_xscale() == "log"
        colours = [bar.get_facecolor() for bar in ax.patches[: len(summary)]]
        assert same_color(colours[0], vis.STATUS_COLOURS["frozen"])
        assert same_color(colours[4], vis.STATUS_COLOURS["partial"])
        assert same_color(colours[-1], vis.STATUS_COLOURS["trainable"])
        assert "stats still update" in ax.texts[0].get_text()  # frozen stem, BN in train mode
        assert ax.patches[0].get_hatch() == "///" and not ax.patches[-1].get_hatch()
        model.eval()
        ax = vis.plot_stage_diagram(model).axes[0]
        assert all(not bar.get_hatch() for bar in ax.patches[: len(summary)])
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])


def test_lr_per_stage(plant_model):
    model, _ = plant_model
    stages = list(vis.stage_summary(model))
    groups = []
    for i, stage in enumerate(stages[:-1]):
        groups.append({"params": [model.features[i].parameters().__next__()], "lr": 1e-5 * 2**i, "stage": stage})
    groups.append({"params": list(model.classifier.parameters()), "lr": 1e-2, "stage": "head"})
    optimizer = torch.optim.SGD(groups, lr=0.1)
    fig = vis.plot_lr_per_stage(optimizer)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == stages
    assert [p.get_height() for p in ax.patches] == pytest.approx([g["lr"] for g in groups])
    fig = vis.plot_lr_per_stage([{"lr": 0.0}, {"lr": 1e-3}, {"lr": 1e-3, "stage": "head"}, {"lr": 2e-3, "stage": "head"}])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["group 0", "group 1", "head", "head (2)"]
    assert "frozen" in ax.texts[0].get_text()
    with pytest.raises(InvalidParameterError, match="no 'lr'"):
        vis.plot_lr_per_stage([{"params": []}])


# ----------------------------------------------------------------------------- experiment tables


def test_learning_curve():
    rows = []
    for method, base in (("linear probe", 0.6), ("from scratch", 0.2)):
        for n in (5, 10, 20, 50):
            for seed in range(3):
                rows.append({"method": method, "n_per_class": n, "seed": seed,
                             "accuracy": min(0.99, base + 0.08 * np.log(n) + 0.01 * seed)})
    fig = vis.plot_learning_curve(pd.DataFrame(rows))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.get_lines()) == 2 and len(ax.collections) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["linear probe", "from scratch"]
    assert list(ax.get_lines()[0].get_xdata()) == [5, 10, 20, 50]
    assert ax.get_lines()[0].get_ydata()[0] == pytest.approx(0.6 + 0.08 * np.log(5) + 0.01)
    assert "3 seeds" in ax.get_title()
    single = vis.plot_learning_curve(pd.DataFrame({"n_per_class": [5, 10], "accuracy": [0.5, 0.7]}))
    assert len(single.axes[0].collections) == 0
    with pytest.raises(InvalidParameterError, match="n_per_class"):
        vis.plot_learning_curve(pd.DataFrame({"n": [5], "accuracy": [0.5]}))


def test_heatmap():
    table = pd.DataFrame(
        [[0.9, 0.7, np.nan], [0.6, 0.8, 0.95]],
        index=pd.Index(["small data", "large data"], name="dataset size"),
        columns=pd.Index(["similar", "different", "very different"], name="domain"),
    )
    fig = vis.plot_heatmap(table, "Which recipe wins", fmt=".0%")
    ax = fig.axes[0]
    assert len(fig.axes) == 2 and ax.get_title() == "Which recipe wins"
    assert sorted(t.get_text() for t in ax.texts) == ["60%", "70%", "80%", "90%", "95%"]
    assert ax.get_xlabel() == "domain" and ax.get_ylabel() == "dataset size"
    with pytest.raises(InvalidParameterError, match="number"):
        vis.plot_heatmap(pd.DataFrame({"a": ["x", "y"]}), "t")
    with pytest.raises(CourseError, match="colormap"):
        vis.plot_heatmap(table, "t", cmap="viridiss")
