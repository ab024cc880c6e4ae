"""fit's checkpoints: resuming gives the numbers of an uninterrupted run; other files are refused."""
from __future__ import annotations

import pytest
import torch
from filesnap import snapshot

from tlcourse.errors import CourseError
from tlcourse.train import fit, load_checkpoint


def test_checkpoint_and_resume_match_an_uninterrupted_run(features, new_head, tmp_path):
    ckpt = tmp_path / "run.pt"
    straight = fit(new_head(), features, features, epochs=4, seed=1, progress=False)
    fit(new_head(), features, features, epochs=2, seed=1, progress=False, checkpoint_path=ckpt)
    assert ckpt.is_file() and not list(tmp_path.glob("*.part"))
    resumed_head = new_head(99)  # different start: everything must come from the checkpoint
    optimizer = torch.optim.AdamW(resumed_head.parameters(), lr=1e-3)
    resumed = fit(resumed_head, features, features, epochs=4, seed=1, progress=False,
                  optimizer=optimizer, checkpoint_path=ckpt, resume=True)
    assert [r["epoch"] for r in resumed.records] == [1, 2, 3, 4]
    for a, b in zip(straight.records, resumed.records):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_acc"] == b["val_acc"]


def test_a_checkpoint_is_plain_data_and_loads_weights_only(features, new_head, tmp_path):
    ckpt = tmp_path / "run.pt"
    history = fit(new_head(), features, features, epochs=2, progress=False, checkpoint_path=ckpt)
    state = load_checkpoint(ckpt, torch.device("cpu"))
    assert state["epoch"] == 2 and state["history"] == history.records
    assert state["best_epoch"] == history.best_epoch and state["scheduler"] is None
    assert torch.equal(state["rng"], torch.load(ckpt, weights_only=True)["rng"])


def test_resume_refuses_a_file_fit_did_not_write(features, new_head, tmp_path):
    weights_only = tmp_path / "head.pt"  # a plain state_dict: the likeliest mix-up
    torch.save(new_head().state_dict(), weights_only)
    before = snapshot(tmp_path)
    with pytest.raises(CourseError) as info:
        fit(new_head(), features, epochs=2, progress=False, checkpoint_path=weights_only, resume=True)
    message = str(info.value)
    assert f"Cannot resume from {weights_only}: it is not a checkpoint written by fit" in message
    assert "(no model, optimizer, epoch, history, rng)" in message
    assert "train again without resume=True" in message
    assert snapshot(tmp_path) == before  # the file is left as it was


def test_resume_without_a_checkpoint_says_how_to_make_one(features, new_head, tmp_path):
    missing = tmp_path / "never_written.pt"
    with pytest.raises(CourseError, match=f"resume=True but there is no checkpoint at {missing}. Train once"):
        fit(new_head(), features, epochs=1, progress=False, checkpoint_path=missing, resume=True)
    with pytest.raises(CourseError, match="no checkpoint at None"):
        fit(new_head(), features, epochs=1, progress=False, resume=True)
    assert list(tmp_path.iterdir()) == []
