"""Flip test-time augmentation: the average of two views, usable wherever a model is."""
from __future__ import annotations

import torch
from torch import nn

from tlcourse.deploy import export_model, load_exported
from tlcourse.models import FlipAverage, create_model, get_spec
from tlcourse.train import evaluate


def _model() -> nn.Module:
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    return model.eval()


def test_output_is_the_log_of_the_averaged_probabilities(small_plants):
    model = _model()
    x = torch.stack([small_plants[i][0] for i in range(6)])
    with torch.no_grad():
        want = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
        got = FlipAverage(model)(x)
    assert torch.allclose(got.softmax(1), want, atol=1e-6)
    assert torch.allclose(got.exp().sum(1), torch.ones(6), atol=1e-5)  # already normalised
    with torch.no_grad():  # a photo and its mirror image now get exactly the same answer
        assert torch.allclose(FlipAverage(model)(x.flip(-1)), got, atol=1e-5)


def test_evaluate_scores_the_average(small_plants):
    model = _model()
    single = evaluate(model, small_plants, device="cpu")
    averaged = evaluate(FlipAverage(model), small_plants, device="cpu")
    assert not model.training  # the wrapper starts in the model's mode, so evaluate restores eval
    x = torch.stack([small_plants[i][0] for i in range(len(small_plants))])
    with torch.no_grad():
        mirrored = model(x.flip(-1)).softmax(1)
    want = (single["probs"] + mirrored) / 2
    assert torch.allclose(averaged["probs"], want, atol=1e-5)
    assert torch.equal(averaged["preds"], want.argmax(1))
    # the loss is the cross-entropy of the averaged probabilities
    expected_loss = nn.functional.nll_loss(want.log(), averaged["labels"])
    assert abs(averaged["loss"] - float(expected_loss)) < 1e-4


def test_exported_wrapper_predicts_the_average(tmp_path, small_plants):
    model = _model()
    pre = get_spec("mobilenet_v2").preprocessing.at(64)
    path = export_model(FlipAverage(model), tmp_path / "m.pt2", class_names=small_plants.classes,
                        preprocessing=pre, provenance={"backbone": "mobilenet_v2", "tta": "flip"})
    exported = load_exported(path)
    x = torch.stack([small_plants[i][0] for i in range(3)])
    with torch.no_grad():
        want = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
        got = exported.model(x).softmax(1)
    assert torch.allclose(got, want, atol=1e-5)


def test_four_views_average_the_photo_its_mirror_and_both_upside_down(tmp_path, small_plants):
    model = _model()
    x = torch.stack([small_plants[i][0] for i in range(5)])
    four = FlipAverage(model, upside_down=True)
    with torch.no_grad():
        want = sum(model(v).softmax(1) for v in (x, x.flip(-1), x.flip(-2), x.flip(-2).flip(-1))) / 4
        got = four(x)
        assert torch.allclose(got.softmax(1), want, atol=1e-6)
        for flipped in (x.flip(-2), x.flip(-1).flip(-2)):  # every view of a photo gets the same answer
            assert torch.allclose(four(flipped), got, atol=1e-5)
    assert "views=4" in repr(four) and "views=2" in repr(FlipAverage(model))
    path = export_model(four, tmp_path / "m4.pt2", class_names=small_plants.classes,
                        preprocessing=get_spec("mobilenet_v2").preprocessing.at(64), provenance={"tta": "flips"})
    with torch.no_grad():
        assert torch.allclose(load_exported(path).model(x).softmax(1), want, atol=1e-5)
