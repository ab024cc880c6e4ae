"""train_one_epoch and evaluate on their own: a hand-written loop of them is fit, and each keeps
its promises (what trains, when the scheduler steps, which modes are left) on real leaves."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tlcourse.errors import CourseError
from tlcourse.models import snapshot
from tlcourse.models.modes import evaluating, start_training
from tlcourse.train import accuracy, evaluate, fit, predict, train_one_epoch


def _numbers(history) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


def _modes(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def test_a_loop_of_train_one_epoch_and_evaluate_gives_fits_numbers(features, new_head):
    seed = 3
    reference = fit(new_head(), features, features, epochs=2, seed=seed, device="cpu", progress=False)
    head = new_head()
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)  # fit's default optimizer
    torch.manual_seed(seed)
    loader = DataLoader(features, batch_size=32, shuffle=True, generator=torch.Generator())
    records = []
    for epoch in (1, 2):
        loader.generator.manual_seed(seed + epoch)  # fit's batch order for this epoch
        stats = train_one_epoch(head, loader, optimizer, device="cpu", epoch=epoch)
        ev = evaluate(head, features, device="cpu")
        records.append({"epoch": epoch, **stats, "val_loss": ev["loss"], "val_acc": ev["acc"]})
    assert records == _numbers(reference)


def test_train_one_epoch_trains_the_unfrozen_and_steps_the_scheduler_per_batch(frozen_model, small_plants):
    model = copy.deepcopy(frozen_model)  # backbone frozen, head trainable
    before = snapshot(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    batches = DataLoader(small_plants, batch_size=32)
    stats = train_one_epoch(model, batches, optimizer, scheduler=scheduler, device="cpu")
    assert list(stats) == ["train_loss", "train_acc", "lr"]
    assert scheduler.last_epoch == len(batches) == 3  # once per optimizer step, not per epoch
    assert stats["lr"] == pytest.approx(0.1 / (len(batches) + 1))
    assert stats["train_loss"] > 0 and 0 <= stats["train_acc"] <= 1
    after = snapshot(model)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and all(k.startswith("classifier.1") for k in moved)  # frozen BN statistics stayed put
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert model.training and not any(m.training for m in bns)  # left as start_training leaves it

    train_one_epoch(model, batches, optimizer, device="cpu", freeze_bn=False)
    assert any(not torch.equal(after[k], v) for k, v in snapshot(model).items() if k.endswith("running_mean"))
    assert all(m.training for m in bns)


def test_train_one_epoch_refuses_what_it_cannot_train_on(new_head):
    head = new_head()
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    weights = {k: v.clone() for k, v in head.state_dict().items()}
    with pytest.raises(CourseError, match="nothing to train on: the batches held no images"):
        train_one_epoch(head, [], optimizer, device="cpu")
    raw = [(torch.zeros(2, 1280, dtype=torch.uint8), torch.tensor([0, 1]))]
    with pytest.raises(CourseError, match="raw uint8 images"):
        train_one_epoch(head, raw, optimizer, device="cpu")
    assert all(torch.equal(weights[k], v) for k, v in head.state_dict().items())


@torch.no_grad()
def test_evaluate_on_its_own_matches_a_plain_forward_and_restores_each_mode(frozen_model, small_plants):
    model = copy.deepcopy(frozen_model)
    start_training(model)  # train mode with frozen BatchNorm in eval: the mix a fit leaves behind
    modes = _modes(model)
    out = evaluate(model, small_plants, batch_size=32, device="cpu")
    assert _modes(model) == modes
    x = torch.stack([small_plants[i][0] for i in range(len(small_plants))])
    y = torch.tensor([int(small_plants[i][1]) for i in range(len(small_plants))])
    with evaluating(model):
        logits = model(x)
    assert torch.equal(out["labels"], y) and torch.equal(out["preds"], out["probs"].argmax(1))
    assert torch.allclose(out["probs"], logits.softmax(1), atol=1e-5)
    assert out["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-5)
    assert out["acc"] == accuracy(out["probs"], y) == accuracy(out["preds"], y)
    probs, labels = predict(model, small_plants, batch_size=32, device="cpu")
    assert torch.equal(probs, out["probs"]) and torch.equal(labels, y)
