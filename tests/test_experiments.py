"""tlcourse.experiments on real data: the strategies train what they say, the budget is shared, seeds matter.

Runs use PneumoniaMNIST (decoded from one small npz) at 32 px with a few images per class and one
epoch, so every strategy's code path runs on real X-rays in a few seconds.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from tlcourse import experiments
from tlcourse.errors import CourseError, InvalidParameterError
from tlcourse.experiments import Budget, run_grid, run_strategy

DATASET = "pneumoniamnist"


@pytest.fixture(scope="module")
def budget() -> Budget:
    return Budget(image_size=32, epochs=1, batch_size=8, lr=1e-3, test_images=24, device="cpu")


@pytest.fixture(scope="module")
def grid(budget) -> tuple[pd.DataFrame, list[experiments.Run]]:
    return run_grid([DATASET], [3], list(experiments.STRATEGIES), [0, 1], budget, progress=False, keep_runs=True)


def test_budget_rejects_bad_values():
    with pytest.raises(InvalidParameterError, match="epochs"):
        Budget(epochs=0)
    with pytest.raises(CourseError, match="stage1"):
        Budget(partial_from="stem")  # nothing would stay frozen: that is full fine-tuning
    with pytest.raises(CourseError, match="Valid"):
        Budget(partial_from="stage9")
    assert Budget(partial_from="stage5").boundary == "stage4"
    assert Budget(partial_from="top").boundary == "stage5"
    with pytest.raises(CourseError, match="probe_stage.*stage9"):
        Budget(probe_stage="stage9")


def test_unknown_strategy_and_dataset_are_named(budget):
    with pytest.raises(CourseError, match="'fine_tune'.*linear_probe"):
        run_strategy("fine_tune", DATASET, 3, 0, budget)
    with pytest.raises(CourseError, match="pneumonia"):
        run_grid(["pneumonia"], [3], ["linear_probe"], [0], budget, progress=False)
    with pytest.raises(InvalidParameterError, match="seeds"):
        run_grid([DATASET], [3], ["linear_probe"], [], budget, progress=False)


def test_every_strategy_runs_on_the_same_test_images(grid, budget):
    table, runs = grid
    assert len(table) == 2 * len(experiments.STRATEGIES) and set(table["strategy"]) == set(experiments.STRATEGIES)
    test = experiments.load_task(DATASET, budget).test
    assert len(test) == 24
    for run in runs:
        assert torch.equal(run.labels, test.labels)
        assert run.probs.shape == (24, 2)
        assert torch.allclose(run.probs.sum(1), torch.ones(24), atol=1e-4)
        assert run.n_train == 6 and run.train_counts == {"normal": 3, "pneumonia": 3}
        assert 0.0 <= run.acc <= 1.0 and run.seconds > 0


def test_trainable_parameters_follow_the_strategy(grid):
    table, _ = grid
    params = table.groupby("strategy")["trainable_params"].first()
    # MobileNetV2 with a 2-class head: head 1280*2+2; partial = stage5 + top + head; full = everything.
    assert params["linear_probe"] == 2562
    assert params["stage_probe"] == 96 * 2 + 2  # stage4's 96 pooled channels -> 2 classes
    assert params["partial"] == 795264 + 886080 + 2562
    assert params["full"] == params["scratch"] == 2226434


def _run(runs, strategy: str, seed: int) -> experiments.Run:
    return next(r for r in runs if r.strategy == strategy and r.seed == seed)


def test_seeds_change_training_images_but_a_seed_repeats_exactly(grid, budget):
    _, runs = grid
    again = run_strategy("partial", DATASET, 3, 0, budget)
    assert torch.allclose(again.probs, _run(runs, "partial", 0).probs, atol=1e-6)  # CPU + same seed: same numbers
    assert not torch.allclose(again.probs, _run(runs, "partial", 1).probs)


def test_seeds_and_sample_sizes_accept_numpy_integers_but_not_bools(grid, budget):
    with pytest.raises(InvalidParameterError, match=r"seed must be an integer >= 0, got True\."):
        run_strategy("linear_probe", DATASET, 3, True, budget)
    with pytest.raises(InvalidParameterError, match=r"max_train must be an integer >= 2, got True\. .*None"):
        run_strategy("linear_probe", DATASET, None, 0, budget, max_train=True)
    numpy_seed = run_strategy("linear_probe", DATASET, 3, np.int64(0), budget)  # e.g. from np.arange
    assert numpy_seed.seed == 0 and type(numpy_seed.seed) is int
    assert torch.allclose(numpy_seed.probs, _run(grid[1], "linear_probe", 0).probs, atol=1e-6)
    task = experiments.load_task(DATASET, budget)
    sample = experiments.training_sample(task, None, 0, np.int64(20))
    assert sample.paths == experiments.training_sample(task, None, 0, 20).paths


def test_balanced_accuracy_is_the_mean_of_class_recalls():
    labels = torch.tensor([0, 0, 0, 0, 1])
    probs = torch.tensor([[0.9, 0.1]] * 5)  # always class 0
    run = experiments.Run("x", "different", "full", 2, 0, 4, 1, 0.1, probs, labels, ["a", "b"])
    assert run.acc == pytest.approx(0.8)
    assert run.balanced_acc == pytest.approx(0.5)


def test_natural_balance_sample_and_class_weights(grid, budget):
    with pytest.raises(InvalidParameterError, match="either"):
        run_strategy("linear_probe", DATASET, 3, 0, budget, max_train=20)
    with pytest.raises(InvalidParameterError, match="class_weights"):
        run_strategy("linear_probe", DATASET, 3, 0, budget, class_weights=[1.0])
    plain = run_strategy("linear_probe", DATASET, None, 0, budget, max_train=20)
    assert plain.n_train == 20 and plain.n_per_class is None
    heavy = run_strategy("linear_probe", DATASET, None, 0, budget, max_train=20, class_weights=[1.0, 50.0])
    # Weighting "pneumonia" 50x pushes the probe's probabilities towards it.
    assert heavy.probs[:, 1].mean() > plain.probs[:, 1].mean()
    weighted_net = run_strategy("partial", DATASET, 3, 0, budget, class_weights=torch.tensor([1.0, 50.0]))
    assert weighted_net.probs[:, 1].mean() > _run(grid[1], "partial", 0).probs[:, 1].mean()


def test_summaries_and_tables(grid):  # their plot: tests/plots/test_strategies.py
    table, _ = grid
    summary = experiments.summarise(table, "acc")
    assert list(summary.index.get_level_values("strategy")) == list(experiments.STRATEGIES)
    row = summary.loc[(DATASET, 3, "full")]
    values = table.loc[table["strategy"] == "full", "acc"]
    assert row["mean"] == pytest.approx(values.mean()) and row["std"] == pytest.approx(values.std())
    assert row["seeds"] == 2
    matrix = experiments.decision_table(table, "balanced_acc")
    assert list(matrix.index) == list(experiments.STRATEGIES.values())
    assert list(matrix.columns) == [f"{DATASET} (different), 3/class"]
    with pytest.raises(CourseError, match="metric"):
        experiments.summarise(table, "f1")


def test_explore_headless_shows_the_default_view(grid, monkeypatch):
    table, _ = grid
    monkeypatch.setenv("TLCOURSE_HEADLESS", "1")
    fig = experiments.explore(table)
    assert DATASET in fig.axes[0].get_title()
    monkeypatch.setenv("TLCOURSE_HEADLESS", "0")
    widget = experiments.explore(table)
    assert type(widget).__name__ == "VBox"
    plt.close("all")


def test_recalibrated_bn_statistics_are_those_of_the_training_images(budget):
    from tlcourse.experiments import _recalibrate_bn, load_task, training_sample
    from tlcourse.models import create_model

    train = training_sample(load_task(DATASET, budget), 3, 0)
    model, _ = create_model("mobilenet_v2", 2)
    model.eval()
    conv, bn = model.features[0][0], model.features[0][1]
    imagenet_mean = bn.running_mean.clone()
    _recalibrate_bn(model, train, torch.device("cpu"))
    with torch.no_grad():
        x = torch.stack([train[i][0] for i in range(len(train))])
        expected = conv(x).mean(dim=(0, 2, 3))
    assert torch.allclose(bn.running_mean, expected, atol=1e-4)
    assert not torch.allclose(bn.running_mean, imagenet_mean, atol=1e-2)
    assert bn.momentum == 0.1 and not model.training  # restored afterwards


def test_the_pool_cache_gives_each_run_the_features_of_its_own_images(grid, budget):
    """Rows read out of the whole pool's activations are the sample's own: same probabilities."""
    _, runs = grid
    pooled = Budget(**{**budget.__dict__, "cache_pool": True})
    for strategy in ("linear_probe", "stage_probe", "partial"):
        alone = run_strategy(strategy, DATASET, 3, 1, pooled)
        # the same images: only float rounding differs (the pass batches them differently)
        assert torch.allclose(alone.probs, _run(runs, strategy, 1).probs, atol=1e-2), strategy
    task = experiments.load_task(DATASET, budget)
    stranger = experiments.load_task(DATASET, budget).test  # test images are not in the training pool
    with pytest.raises(InvalidParameterError, match="not in pneumoniamnist's training pool"):
        experiments._pool_rows(task, stranger)


def test_the_earlier_stage_probe_reads_the_pooled_stage_output(budget):
    from tlcourse.features import extract_features, logistic_regression
    from tlcourse.features import FeatureSet
    from tlcourse.models import create_model

    run = run_strategy("stage_probe", DATASET, 3, 0, budget)
    task = experiments.load_task(DATASET, budget)
    train = experiments.training_sample(task, 3, 0)
    model, _ = create_model("mobilenet_v2", 2, seed=0)
    pooled = [extract_features(model, d, stage="stage4", device="cpu", progress=False) for d in (train, task.test)]
    sets = [FeatureSet(f.features.mean(dim=(2, 3)), f.labels, f.classes) for f in pooled]
    expected = logistic_regression(*sets, max_iter=2000)["model"].predict_proba(sets[1].numpy()[0])
    assert np.allclose(run.probs.numpy(), expected, atol=1e-4)


def test_grid_sizes_per_dataset_and_largest_size_per_strategy(budget):
    table = run_grid(["pneumoniamnist", "hymenoptera"], {"pneumoniamnist": [2, 4], "hymenoptera": [2]},
                     ["linear_probe", "full"], [0], Budget(**{**budget.__dict__, "epochs": 1}),
                     largest={"full": 2}, progress=False)
    cells = set(zip(table["dataset"], table["n_per_class"], table["strategy"]))
    assert cells == {("pneumoniamnist", 2, "linear_probe"), ("pneumoniamnist", 4, "linear_probe"),
                     ("pneumoniamnist", 2, "full"), ("hymenoptera", 2, "linear_probe"), ("hymenoptera", 2, "full")}
    matrix = experiments.decision_table(table)
    assert np.isnan(matrix.loc["full fine-tuning", "pneumoniamnist (different), 4/class"])  # not run: blank
    with pytest.raises(InvalidParameterError, match="missing.*hymenoptera"):
        run_grid(["pneumoniamnist", "hymenoptera"], {"pneumoniamnist": [2]}, ["linear_probe"], [0], budget,
                 progress=False)
    with pytest.raises(InvalidParameterError, match="sizes for pneumoniamnist"):
        run_grid(["pneumoniamnist"], {"pneumoniamnist": []}, ["linear_probe"], [0], budget, progress=False)
    with pytest.raises(InvalidParameterError, match="sizes"):
        run_grid(["pneumoniamnist"], [0], ["linear_probe"], [0], budget, progress=False)
    with pytest.raises(CourseError, match="'scratch'"):
        run_grid(["pneumoniamnist"], [2], ["linear_probe"], [0], budget, largest={"scratch": 2}, progress=False)
    with pytest.raises(InvalidParameterError, match="largest"):
        run_grid(["pneumoniamnist"], [2], ["full"], [0], budget, largest={"full": 0}, progress=False)
