"""How training went: histories (one or several runs, any accepted form) with the best epoch
starred, and learning curves with the spread over seeds."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tlcourse import plots as vis
from tlcourse.errors import InvalidParameterError

pytestmark = pytest.mark.usefixtures("no_open_figures")


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


def test_lr_range_plot_marks_the_minimum_and_the_chosen_rates():
    from tlcourse.train import LRSweep

    lrs = [1e-5 * 10 ** (i / 10) for i in range(41)]
    losses = [2.5 - 0.04 * i if i < 30 else 1.3 + 0.3 * (i - 30) for i in range(41)]
    sweep = LRSweep(lrs, losses, losses)
    fig = vis.plot_lr_range(sweep, marks={"phase 1": 1e-3})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("lowest smoothed loss (lr 0.01)") for label in labels)
    assert "phase 1: 0.001" in labels
    with pytest.raises(InvalidParameterError, match="lr_range_test"):
        vis.plot_lr_range({"lrs": lrs})
    with pytest.raises(InvalidParameterError, match="positive rate"):
        vis.plot_lr_range(sweep, marks={"bad": -1})
    with pytest.raises(InvalidParameterError, match="at least 2"):
        vis.plot_lr_range(LRSweep([1e-3], [1.0], [1.0]))
