"""How a transfer recipe sets up the model, on MobileNetV2: the stage diagram shows frozen,
partly frozen and trainable stages and the BatchNorm trap, its numbers are the freeze audit's,
and the learning rate per stage is labelled by stage."""
from __future__ import annotations

import pytest
import torch
from matplotlib.colors import same_color

from tlcourse import plots as vis
from tlcourse.errors import InvalidParameterError
from tlcourse.models import freeze_audit

pytestmark = pytest.mark.usefixtures("no_open_figures")


def test_stage_diagram_shows_frozen_partial_and_bn_trap(plant_classifier):
    model, _ = plant_classifier
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
        audit = freeze_audit(model)  # the diagram draws the audit's numbers, not a second count
        assert list(summary) == list(audit.index)
        assert [r["trainable"] for r in summary.values()] == audit["trainable"].tolist()
        assert [r["batchnorm_training"] for r in summary.values()] == audit["bn_train"].tolist()
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


def test_lr_per_stage(plant_classifier):
    model, _ = plant_classifier
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
