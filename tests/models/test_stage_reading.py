"""A head that reads several stages' pooled outputs: the numbers, the surgery, export and training."""
from __future__ import annotations

import copy

import pytest
import torch

from tlcourse.deploy import export_model, load_exported
from tlcourse.errors import CourseError
from tlcourse.models import ReadStages, create_model, get_head, get_spec, stage_modules, stage_sequence


def _pooled_by_hand(model, images, stages):
    """Each named stage's global-average-pooled output, concatenated, computed stage by stage."""
    out, x = [], images
    for name, stage in stage_sequence(model).items():
        if name == "head":
            break
        x = stage(x)
        if name in stages:
            out.append(x.mean((2, 3)))
    return torch.cat(out, 1)


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_the_head_reads_the_named_stages_pooled_and_concatenated(backbone, leaf_batch):
    model, _ = create_model(backbone, 3, seed=0)
    model.eval()
    images = get_spec(backbone).preprocessing.at(64).normalize(leaf_batch[0][:4])
    stages = ["stage3", "stage4", "stage5"]
    with torch.no_grad():
        expected = _pooled_by_hand(model, images, stages)
        mirrored = _pooled_by_hand(model, images.flip(-1), stages)
    reader = ReadStages(model, ["stage5", "stage3", "stage4"], 3, symmetry="none", seed=0)
    assert reader.stages == stages  # forward order, whatever order they were given in
    assert get_head(reader.model).in_features == expected.shape[1]
    with torch.no_grad():
        assert torch.allclose(reader.features(images), expected, atol=1e-5)
        head = get_head(reader.model)
        assert torch.allclose(reader(images), head(expected), atol=1e-5)
    # the top is dropped: no parameters left in it, so it is neither trained nor exported
    assert not any(True for m in stage_modules(reader.model)["top"] for _ in m.parameters())
    reader.symmetry = "mirror"
    with torch.no_grad():
        assert torch.allclose(reader.features(images), (expected + mirrored) / 2, atol=1e-5)
        assert torch.allclose(reader(images), reader(images.flip(-1)), atol=1e-5)  # mirror-symmetric
    reader.symmetry = "flips"
    with torch.no_grad():
        upside_down = _pooled_by_hand(model, images.flip(-2), stages)
        turned = _pooled_by_hand(model, images.flip(-2).flip(-1), stages)
        assert torch.allclose(reader.features(images), (expected + mirrored + upside_down + turned) / 4, atol=1e-5)
        assert torch.allclose(reader(images), reader(images.flip(-2)), atol=1e-5)  # and upside-down-symmetric


def test_training_sees_one_view_and_gradients_reach_every_stage_read(leaf_batch):
    model, _ = create_model("mobilenet_v2", 3, seed=0)
    reader = ReadStages(model, ["stage4", "stage5"], 3, seed=0)
    images = get_spec("mobilenet_v2").preprocessing.at(64).normalize(leaf_batch[0][:4])
    reader.train()
    with torch.no_grad():
        assert torch.allclose(reader.features(images), _pooled_by_hand(reader.model, images, ["stage4", "stage5"]), atol=1e-5)
    reader(images).sum().backward()
    for stage in ("stage3", "stage4", "stage5", "head"):
        grads = [p.grad for m in stage_modules(reader.model)[stage] for p in m.parameters()]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), stage


def test_copies_export_and_the_exported_file_predicts_the_same(tmp_path, small_plants):
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    reader = ReadStages(model, ["stage3", "stage4", "stage5"], 15, symmetry="flips", seed=0).eval()
    x = torch.stack([small_plants[i][0] for i in range(3)])
    twin = copy.deepcopy(reader)
    with torch.no_grad():
        want = reader(x)
        assert torch.allclose(twin(x), want)
        get_head(twin.model).weight.zero_()  # the copy's head is its own
        assert torch.allclose(reader(x), want)
    path = export_model(reader, tmp_path / "m.pt2", class_names=small_plants.classes,
                        preprocessing=get_spec("mobilenet_v2").preprocessing.at(64),
                        provenance={"backbone": "mobilenet_v2", "head_reads": reader.stages})
    with torch.no_grad():
        assert torch.allclose(load_exported(path).model(x), want, atol=1e-4)


def test_bad_stage_lists_are_refused_with_the_names_to_use():
    for stages, message in [(["stage9"], "Unknown stage"), ("stage5", "as a list"), ([], "as a list"),
                            (["stage5", "stage5"], "read once"), (["head"], "Unknown stage")]:
        model, _ = create_model("mobilenet_v2", 3, pretrained=False)
        with pytest.raises(CourseError, match=message):
            ReadStages(model, stages, 3)
    with pytest.raises(CourseError, match="Unknown symmetry.*flips"):
        ReadStages(create_model("mobilenet_v2", 3, pretrained=False)[0], ["stage5"], 3, symmetry="rotations")
