"""Cached features and activations: same numbers as the model, computed once."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tlcourse.data import train_transform
from tlcourse.errors import CourseError
from tlcourse.features import (
    clear_memory_cache,
    extract_features,
    FeatureSet,
    features_above,
    logistic_head,
    logistic_regression,
    probe_stages,
    stage_features,
    train_linear_head,
)
from tlcourse.models import create_model, freeze, get_spec, pooled_features, replace_head, split_at
from tlcourse.paths import subcache
from tlcourse.train import evaluate


@pytest.fixture(scope="module")
def model():
    m, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(m)
    return m.eval()


def test_features_equal_the_models_own_and_are_cached(model, small_plants):
    feats = extract_features(model, small_plants, progress=False)
    x = torch.stack([small_plants[i][0] for i in range(4)])
    with torch.no_grad():
        direct = pooled_features(model, x)
    assert torch.allclose(feats.features[:4], direct, atol=1e-4)
    assert feats.features.shape == (len(small_plants), 1280)
    assert extract_features(model, small_plants, progress=False) is feats  # memory cache
    assert (subcache("features") / f"{feats.key}.pt").is_file()
    clear_memory_cache()
    from_disk = extract_features(model, small_plants, progress=False)
    assert from_disk is not feats and torch.equal(from_disk.features, feats.features)


def test_cache_key_changes_with_weights_and_images(model, small_plants):
    a = extract_features(model, small_plants, progress=False)
    b = extract_features(model, small_plants.subset(range(10)), progress=False)
    other, _ = create_model("mobilenet_v2", 15, pretrained=False)
    c = extract_features(other, small_plants, progress=False)
    assert len({a.key, b.key, c.key}) == 3


def test_folded_stages_are_reused_until_a_weight_changes(small_plants, monkeypatch):
    """Folding copies and traces every block; it is done once per set of weights, and done
    again as soon as a weight changes in place (as an optimizer step changes it)."""
    import tlcourse.features as features_module

    m, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(m)
    m.eval()
    folds = []
    real_fold = features_module.fold_batchnorm
    monkeypatch.setattr(features_module, "fold_batchnorm", lambda module: folds.append(module) or real_fold(module))
    first = extract_features(m, small_plants.subset(range(8)), stage="stage2", cache=False, progress=False)
    n_stages = len(folds)
    again = extract_features(m, small_plants.subset(range(8)), stage="stage2", cache=False, progress=False)
    assert len(folds) == n_stages and torch.equal(first.features, again.features)
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    with torch.no_grad():
        conv.weight.mul_(2.0)
    changed = extract_features(m, small_plants.subset(range(8)), stage="stage2", cache=False, progress=False)
    assert len(folds) == 2 * n_stages
    assert not torch.allclose(changed.features, first.features)


def test_augmented_images_cannot_be_cached(model, small_plants):
    pre = get_spec("mobilenet_v2").preprocessing.at(64)
    with pytest.raises(CourseError, match="one random augmentation"):
        extract_features(model, small_plants.with_transform(train_transform(pre, "standard", 64)))
    with pytest.raises(CourseError, match="raw uint8"):
        extract_features(model, small_plants.with_transform(None))


def test_a_hand_written_random_compose_cannot_be_cached_either(model, small_plants):
    import torch
    from torchvision.transforms import v2

    pre = get_spec("mobilenet_v2").preprocessing
    scale = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std))]
    nested = v2.Compose([v2.Compose([v2.RandomHorizontalFlip()]), *scale])  # random, one level down
    with pytest.raises(CourseError, match="one random augmentation"):
        extract_features(model, small_plants.with_transform(nested), cache=False, progress=False)
    plain = v2.Compose([v2.CenterCrop(64), *scale])  # deterministic: cached like eval_transform
    feats = extract_features(model, small_plants.with_transform(plain), cache=False, progress=False)
    assert len(feats) == len(small_plants)


def test_linear_head_on_features_equals_the_whole_model(model, small_plants):
    feats = extract_features(model, small_plants, progress=False)
    head, history = train_linear_head(feats, feats, epochs=5, seed=0)
    on_features = evaluate(head, feats, device="cpu")["acc"]
    replace_head(model, head)
    on_images = evaluate(model, small_plants, device="cpu")["acc"]
    assert on_features == pytest.approx(on_images, abs=1 / len(small_plants) + 1e-9)
    assert history.final["train_acc"] > 0.5
    assert logistic_regression(feats, feats)["train_acc"] > 0.9


def test_boundary_activations_feed_the_top(model, small_plants):
    acts = extract_features(model, small_plants, stage="stage4", progress=False)
    assert acts.features.ndim == 4 and acts.features.shape[1] == 96
    bottom, top = split_at(model, "stage4")
    x = torch.stack([small_plants[i][0] for i in range(3)])
    with torch.no_grad():
        assert torch.allclose(top(acts.features[:3]), model(x), atol=1e-4)
    with pytest.raises(CourseError, match="Valid stages"):
        extract_features(model, small_plants, stage="stage9")


def test_features_above_a_boundary_are_the_whole_backbones_features_and_are_cached(model, small_plants):
    whole = extract_features(model, small_plants, progress=False)
    for after in ("stage2", "stage5", "top"):
        acts = extract_features(model, small_plants, stage=after, progress=False)
        above = features_above(model, acts, after=after, batch_size=7, progress=False)
        assert above.features.shape == whole.features.shape and torch.equal(above.labels, whole.labels)
        assert torch.allclose(above.features, whole.features, atol=1e-4)
        assert above.classes == whole.classes and above.key and above.key != acts.key
        assert features_above(model, acts, after=after, progress=False) is above  # memory cache
        clear_memory_cache()
        assert torch.equal(features_above(model, acts, after=after, progress=False).features, above.features)  # disk
    acts = extract_features(model, small_plants, stage="stage5", progress=False)
    other, _ = create_model("mobilenet_v2", 15, pretrained=False)  # other weights above the boundary: other features
    assert features_above(other, acts, after="stage5", progress=False).key != features_above(model, acts, after="stage5").key


def test_features_above_refuses_pooled_features_and_unknown_stages(model, small_plants):
    pooled = extract_features(model, small_plants, progress=False)
    with pytest.raises(CourseError, match=r"stage='stage4'"):
        features_above(model, pooled, after="stage4", progress=False)
    acts = extract_features(model, small_plants, stage="stage4", progress=False)
    with pytest.raises(CourseError, match="Valid stages"):
        features_above(model, acts, after="stage9", progress=False)
    uncached = FeatureSet(acts.features, acts.labels, acts.classes)  # no key: computed, not cached
    assert features_above(model, uncached, after="stage4", progress=False).key == ""


def test_probe_every_stage(model, small_plants):
    table = probe_stages(model, small_plants, small_plants, progress=False)
    assert list(table["stage"]) == ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "top"]
    assert table["dim"].tolist() == [16, 24, 32, 64, 96, 160, 1280]
    assert table["acc"].between(0, 1).all() and table["acc"].iloc[-1] > 3 / 15


def test_stage_features_pool_every_stage_and_the_top_is_the_models_own(model, small_plants):
    first, second = small_plants.subset(range(6)), small_plants.subset(range(6, 10))
    a, b = stage_features(model, first, second, device="cpu", progress=False)
    assert list(a) == ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "top"]
    assert [t.shape for t in b.values()][-2:] == [(4, 160), (4, 1280)]
    x = torch.stack([first[i][0] for i in range(6)])
    with torch.no_grad():
        assert torch.allclose(a["top"], pooled_features(model, x), atol=1e-4)
        bottom, _ = split_at(model, "stage5")
        assert torch.allclose(a["stage5"], bottom(x).mean((2, 3)), atol=1e-4)


def test_the_model_can_be_fine_tuned_after_extraction_and_probing(small_plants):
    """Lesson 07's order of work: features first, then unfreeze and train the same model.
    Moving modules inside inference_mode would have turned the weights into inference tensors."""
    from tlcourse.models import unfreeze_top

    m, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(m)
    extract_features(m, small_plants, cache=False, progress=False)
    probe_stages(m, small_plants.subset(range(30)), small_plants.subset(range(30)), progress=False)
    assert not any(p.is_inference() for p in m.parameters())
    unfreeze_top(m, 2)
    x = torch.stack([small_plants[i][0] for i in range(4)])
    m.train()(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_mirror_pairs_upside_down_hold_four_views_drawn_uniformly(model, small_plants):
    from tlcourse.features import MirrorPairs, extract_mirror_pairs

    pairs = extract_mirror_pairs(model, small_plants, stage="stage3", upside_down=True, device="cpu", progress=False)
    two = extract_mirror_pairs(model, small_plants, stage="stage3", device="cpu", progress=False)
    assert pairs.photo is two.photo and pairs.mirror is two.mirror and len(two.views) == 2  # cached once
    bottom, _ = split_at(model, "stage3")
    x = torch.stack([small_plants[i][0] for i in range(3)])
    with torch.no_grad():
        assert torch.allclose(pairs.upside_down.features[:3], bottom(x.flip(-2)), atol=1e-4)
        assert torch.allclose(pairs.upside_down_mirror.features[:3], bottom(x.flip(-2).flip(-1)), atol=1e-4)
    torch.manual_seed(0)
    drawn = [pairs[0][0] for _ in range(200)]
    counts = [sum(torch.equal(d, v.features[0]) for d in drawn) for v in pairs.views]
    assert sum(counts) == 200 and all(25 < c < 75 for c in counts), counts
    with pytest.raises(CourseError, match="both upside-down views"):
        MirrorPairs(pairs.photo, pairs.mirror, pairs.upside_down)
    with pytest.raises(CourseError, match="same photos in the same order"):
        MirrorPairs(pairs.photo, pairs.mirror, pairs.upside_down,
                    extract_features(model, small_plants.subset(range(10)), stage="stage3", progress=False))


def test_flips_preset_flips_both_ways_and_mirror_can_flip_upside_down(small_plants):
    from PIL import Image

    from tlcourse.data import Mirror, train_transform
    from tlcourse.data.transforms import is_augmenting

    pre = get_spec("mobilenet_v2").preprocessing.at(64)
    flips = train_transform(pre, "flips")
    assert is_augmenting(flips) and "RandomVerticalFlip" in repr(flips) and "RandomHorizontalFlip" in repr(flips)
    image = small_plants.images[0]
    torch.manual_seed(0)
    seen = {tuple(flips(image)[0, 0, :2].tolist()) for _ in range(40)}
    assert len(seen) == 4  # photo, mirror, upside down, both
    norm = small_plants.transform
    both = Mirror(norm, upside_down=True)
    assert torch.equal(both(image), norm(image.flip(-1).flip(-2)))
    assert torch.equal(Mirror(norm, upside_down=True, left_right=False)(image), norm(image.flip(-2)))
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    pil_flipped = torch.from_numpy(np.asarray(Mirror(lambda im: im, upside_down=True)(pil))).permute(2, 0, 1)
    assert torch.equal(pil_flipped, image.flip(-1).flip(-2))
    assert repr(Mirror(norm)) == f"Mirror({norm!r})" and repr(both) != repr(Mirror(norm))  # distinct cache keys
    with pytest.raises(CourseError, match="neither"):
        Mirror(norm, upside_down=False, left_right=False)


def test_mirror_pairs_hold_the_activations_of_each_photo_and_its_mirror_image(model, small_plants):
    from tlcourse.data import Mirror
    from tlcourse.features import MirrorPairs, extract_mirror_pairs

    pairs = extract_mirror_pairs(model, small_plants, stage="stage3", device="cpu", progress=False)
    bottom, _ = split_at(model, "stage3")
    x = torch.stack([small_plants[i][0] for i in range(3)])
    with torch.no_grad():
        assert torch.allclose(pairs.photo.features[:3], bottom(x), atol=1e-4)
        assert torch.allclose(pairs.mirror.features[:3], bottom(x.flip(-1)), atol=1e-4)
    assert not torch.allclose(pairs.mirror.features[:3], pairs.photo.features[:3].flip(-1), atol=1e-3), \
        "the network is not mirror-symmetric: the mirror's activations must be computed, not flipped"
    torch.manual_seed(0)
    drawn = [pairs[0][0] for _ in range(40)]
    from_photo = sum(torch.equal(d, pairs.photo.features[0]) for d in drawn)
    from_mirror = sum(torch.equal(d, pairs.mirror.features[0]) for d in drawn)
    assert from_photo + from_mirror == 40 and 8 < from_photo < 32
    torch.manual_seed(0)
    assert all(torch.equal(a, pairs[0][0]) for a in drawn[:1])  # seeded: the same draws again
    assert pairs[5][1] == int(small_plants.labels[5]) and len(pairs) == len(small_plants)

    other = extract_features(model, small_plants.subset(range(10)), stage="stage3", progress=False)
    with pytest.raises(CourseError, match="same photos in the same order"):
        MirrorPairs(pairs.photo, other)
    augmenting = small_plants.with_transform(Mirror(train_transform(get_spec("mobilenet_v2").preprocessing.at(64), "flip")))
    with pytest.raises(CourseError, match="one random augmentation"):
        extract_mirror_pairs(model, augmenting, progress=False)


@pytest.mark.parametrize("classes", [15, 2])
def test_logistic_head_is_scikit_learns_classifier_as_a_linear_layer(model, small_plants, classes):
    """Standardisation folded into the weights; two classes become two symmetric logits."""
    feats = extract_features(model, small_plants, progress=False)
    keep = feats.labels < classes
    subset = FeatureSet(feats.features[keep], feats.labels[keep], feats.classes[:classes])
    head = logistic_head(subset, C=0.5)
    sk = logistic_regression(subset, subset, C=0.5)["model"]
    ours = head(subset.features).softmax(1).detach().numpy()
    assert head.out_features == classes
    assert ours == pytest.approx(sk.predict_proba(subset.numpy()[0]), abs=1e-4)


@pytest.mark.parametrize("classes", [15, 2])
def test_lda_head_is_scikit_learns_discriminant_analysis_as_a_linear_layer(model, small_plants, classes):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tlcourse.features import lda_head

    feats = extract_features(model, small_plants, progress=False)
    keep = feats.labels < classes
    subset = FeatureSet(feats.features[keep], feats.labels[keep], feats.classes[:classes])
    x, y = subset.numpy()
    sk = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.4)).fit(x, y)
    head = lda_head(subset, shrinkage=0.4)
    assert head.out_features == classes
    assert head(subset.features).softmax(1).detach().numpy() == pytest.approx(sk.predict_proba(x), abs=1e-4)
    with pytest.raises(CourseError, match="between 0 and 1"):
        lda_head(subset, shrinkage=1.5)


def test_probe_features_scores_precomputed_stage_features_as_probe_stages_does(model, small_plants):
    from tlcourse.features import probe_features

    direct = probe_stages(model, small_plants, small_plants, progress=False)
    (feats,) = stage_features(model, small_plants, progress=False)
    labels = torch.as_tensor(small_plants.labels)
    reused = probe_features(feats, labels, feats, labels)
    assert list(reused["stage"]) == list(direct["stage"])
    assert list(reused["acc"]) == pytest.approx(list(direct["acc"]))


def test_mirror_flips_a_pil_image_as_it_flips_a_tensor(leaf_batch):
    """``data.Mirror`` goes in front of a torchvision pipeline that starts from PIL images, too."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor, to_pil_image

    from tlcourse.data import Mirror

    image = leaf_batch[0][0]
    as_tensor = Mirror(lambda t: t)(image)
    as_pil = Mirror(pil_to_tensor)(to_pil_image(image))
    assert torch.equal(as_tensor, image.flip(-1)) and torch.equal(as_pil, as_tensor)
    assert isinstance(Mirror(lambda im: im)(to_pil_image(image)), Image.Image)


def test_flip_is_a_deterministic_view_whose_features_may_be_cached(model, small_plants):
    from torchvision import transforms

    from tlcourse.data import Flip
    from tlcourse.data.transforms import is_augmenting

    flipped = transforms.Compose([small_plants.transform, Flip((-2,))])
    assert not is_augmenting(flipped)
    assert torch.equal(flipped(small_plants.images[0]), small_plants[0][0].flip(-2))
    (feats,) = stage_features(model, small_plants.with_transform(flipped), progress=False)
    with torch.no_grad():
        top = pooled_features(model, small_plants[0][0].flip(-2)[None])
    assert torch.allclose(feats["top"][:1], top, atol=1e-4)
