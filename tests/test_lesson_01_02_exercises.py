"""Exercises of lessons 01 (feature hierarchy) and 02 (pretrained models), on real models and photos.

For every code exercise: the right objects pass, and typical wrong ones fail with a message that
names the mistake. The answer keys in the solution notebooks' ``answers`` dicts are graded too,
so a reordered option in a bank cannot silently break a solution notebook.
"""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights
from torchvision.transforms import functional as F

from tlcourse.data import decode_images
from tlcourse.exercises import Exercises, load_bank
from tlcourse.exercises.checkers.lesson02 import preprocess_function
from tlcourse.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    create_model,
    get_spec,
    load_backbone,
    stage_of_parameters,
    stage_sequence,
)

ROOT = Path(__file__).resolve().parents[1]
BANKS = ROOT / "exercises" / "banks"
MEAN, STD = list(IMAGENET_MEAN), list(IMAGENET_STD)


def _ex(name: str, tmp_path: Path) -> Exercises:
    return Exercises.load(BANKS / f"{name}.yaml", learner="test", headless=True, progress=tmp_path / "progress.json")


@pytest.fixture()
def ex01(tmp_path) -> Exercises:
    return _ex("01_feature_hierarchy", tmp_path)


@pytest.fixture()
def ex02(tmp_path) -> Exercises:
    return _ex("02_pretrained_models", tmp_path)


@pytest.fixture(scope="module")
def imagenet() -> nn.Module:
    return load_backbone("mobilenet_v2").eval()


@pytest.fixture(scope="module")
def pristine_leaf_model() -> nn.Module:
    model, _ = create_model("mobilenet_v2", 15)
    return model


@pytest.fixture()
def leaf_model(pristine_leaf_model) -> nn.Module:
    return copy.deepcopy(pristine_leaf_model)


@pytest.fixture(scope="module")
def leaf_input(plant_images) -> torch.Tensor:
    """One real leaf at 128 px, normalised for MobileNetV2: the exercise notebook's ``x``."""
    leaf = decode_images(plant_images[:1], 128, progress=False)
    return get_spec("mobilenet_v2").preprocessing.normalize(leaf)


def _answer_key(notebook: str) -> dict:
    """The ``answers`` dict of a solution notebook's parameters cell."""
    nb = nbformat.read(ROOT / "exercises" / "solutions" / f"{notebook}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "answers" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{notebook}: no answers dict in the parameters cell")


def test_banks_validate_with_enough_code_exercises():
    for name in ("01_feature_hierarchy", "02_pretrained_models"):
        bank = load_bank(BANKS / f"{name}.yaml")
        kinds = [q.kind for q in bank]
        assert len(kinds) >= 5 and kinds.count("code") >= 2, (name, kinds)


@pytest.mark.parametrize("notebook", ["01_feature_hierarchy", "02_pretrained_models"])
def test_solution_answer_keys_are_right(notebook, tmp_path):
    ex = _ex(notebook, tmp_path)
    key = _answer_key(notebook)
    assert key, "the answer key is empty"
    for qid, answer in key.items():
        fb = ex.grade(qid, answer)
        assert fb.correct, (qid, answer, fb.message)
    answered_in_code = {q.id for q in ex.bank if q.kind == "code"}
    assert set(key) | answered_in_code == set(ex.ids)


# --------------------------------------------------------------------------- 01: stage3_shape


def _after(model: nn.Module, x: torch.Tensor, stage: str) -> torch.Tensor:
    h = x
    with torch.no_grad():
        for name, module in stage_sequence(model).items():
            h = module(h)
            if name == stage:
                return h
    raise AssertionError(stage)


def test_stage3_shape_right(ex01, imagenet, leaf_input):
    assert ex01.grade("stage3_shape", value=tuple(_after(imagenet, leaf_input, "stage3").shape)).correct
    assert ex01.grade("stage3_shape", value=_after(imagenet, leaf_input, "stage3").shape).correct  # torch.Size


def test_stage3_shape_wrong(ex01, imagenet, leaf_input):
    fb = ex01.grade("stage3_shape", value=tuple(_after(imagenet, leaf_input, "stage4").shape))  # one stage too far
    assert not fb.correct and "not the expected" in fb.message
    fb = ex01.grade("stage3_shape", value=tuple(_after(imagenet, leaf_input, "stage3").shape[1:]))  # batch dim dropped
    assert not fb.correct and "Expected 4 items, got 3" in fb.message


# --------------------------------------------------------------------------- 01: stage5_params


def test_stage5_params(ex01, imagenet):
    stage_of = stage_of_parameters(imagenet)
    stage5 = [p for n, p in imagenet.named_parameters() if stage_of[n] == "stage5"]
    assert ex01.grade("stage5_params", value=sum(p.numel() for p in stage5)).correct
    assert not ex01.grade("stage5_params", value=len(stage5)).correct  # tensors, not numbers
    wider = sum(p.numel() for n, p in imagenet.named_parameters() if stage_of[n] in ("stage5", "top"))
    assert not ex01.grade("stage5_params", value=wider).correct


# --------------------------------------------------------------------------- 01: freeze_early


def test_freeze_early_right(ex01, leaf_model):
    stage_of = stage_of_parameters(leaf_model)
    for name, p in leaf_model.named_parameters():
        p.requires_grad = stage_of[name] not in ("stem", "stage1")
    fb = ex01.grade("freeze_early", model=leaf_model)
    assert fb.correct, fb.message


def test_freeze_early_only_the_stem(ex01, leaf_model):
    for name, p in leaf_model.named_parameters():
        p.requires_grad = not name.startswith(("features.0.", "features.1."))
    fb = ex01.grade("freeze_early", model=leaf_model)
    assert not fb.correct and "stage1" in fb.message and "still trainable" in fb.message


def test_freeze_early_everything_but_head(ex01, leaf_model):
    for name, p in leaf_model.named_parameters():
        p.requires_grad = name.startswith("classifier.")
    fb = ex01.grade("freeze_early", model=leaf_model)
    assert not fb.correct and "stage2" in fb.message and "should be trainable" in fb.message


def test_freeze_early_typo(ex01, leaf_model):
    for name, p in leaf_model.named_parameters():
        if name.startswith(("features.0.", "features.1.", "features.2.", "features.3.")):
            p.require_grad = False  # the typo: sets a new attribute, freezes nothing
    fb = ex01.grade("freeze_early", model=leaf_model)
    assert not fb.correct and "require_grad" in fb.message


# --------------------------------------------------------------------------- 02: preprocess


def _by_hand(resize=256, crop=224, mean=MEAN, std=STD, scale=255.0, bgr=False, batch=False):
    def preprocess(image):
        if bgr:
            image = image.flip(0)
        image = F.center_crop(F.resize(image, [resize], antialias=True), [crop])
        out = F.normalize(image.float() / scale, mean=mean, std=std)
        return out.unsqueeze(0) if batch else out

    return preprocess


def test_preprocess_right(ex02):
    for fn in (_by_hand(), MobileNet_V2_Weights.IMAGENET1K_V1.transforms()):
        fb = ex02.grade("preprocess", preprocess=fn)
        assert fb.correct, fb.message


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_by_hand(scale=1.0), "not divided by 255"),
        (_by_hand(mean=[0, 0, 0], std=[1, 1, 1]), "not normalised"),
        (_by_hand(mean=list(get_spec("efficientnet_lite0").preprocessing.mean),
                  std=list(get_spec("efficientnet_lite0").preprocessing.std)), "efficientnet_lite0's statistics"),
        (_by_hand(bgr=True), "BGR"),
        (_by_hand(mean=STD, std=MEAN), "swapped"),
        (_by_hand(resize=224), "resized to 224 before the crop"),
        (_by_hand(batch=True), "batch of one"),
        (lambda im: F.normalize(F.resize(im, [224, 224], antialias=True).float() / 255, MEAN, STD), "squashed"),
        (lambda im: F.normalize(F.resize(im, [256], antialias=True).float() / 255, MEAN, STD), "not centre-cropped"),
        (lambda im: F.center_crop(F.resize(im, [256], antialias=True), [224]), "still uint8"),
        (lambda im: None, "return statement"),
    ],
)
def test_preprocess_mistakes_are_named(ex02, wrong, words):
    fb = ex02.grade("preprocess", preprocess=wrong)
    assert not fb.correct
    assert words in fb.message, fb.message


def test_preprocess_result_instead_of_function():
    fb = preprocess_function(torch.zeros(3, 224, 224))
    assert not fb.correct and "function itself" in fb.message


def test_preprocess_checker_knows_lite0_stats():
    lite = get_spec("efficientnet_lite0").preprocessing
    assert preprocess_function(_by_hand(mean=list(lite.mean), std=list(lite.std)), backbone="efficientnet_lite0").correct
    fb = preprocess_function(_by_hand(), backbone="efficientnet_lite0")
    assert not fb.correct and "mobilenet_v2's statistics" in fb.message


def test_preprocess_checker_rejects_unknown_backbone_as_bank_error():
    from tlcourse.errors import CourseError

    with pytest.raises(CourseError):
        preprocess_function(_by_hand(), backbone="resnet9000")


# --------------------------------------------------------------------------- 02: new_head, n_trainable


@pytest.fixture()
def fresh_imagenet(imagenet) -> nn.Module:
    return copy.deepcopy(imagenet)


def test_new_head_right(ex02, fresh_imagenet):
    fresh_imagenet.classifier[1] = nn.Linear(fresh_imagenet.classifier[1].in_features, 4)
    fb = ex02.grade("new_head", model=fresh_imagenet)
    assert fb.correct, fb.message


def test_new_head_wrong(ex02, fresh_imagenet):
    fb = ex02.grade("new_head", model=fresh_imagenet)  # nothing replaced
    assert not fb.correct and "still the ImageNet classifier" in fb.message
    fresh_imagenet.classifier = nn.Linear(1280, 4)  # dropout and the Sequential thrown away
    fb = ex02.grade("new_head", model=fresh_imagenet)
    assert not fb.correct and "no module at classifier.1" in fb.message
    scratch = load_backbone("mobilenet_v2", pretrained=False)
    scratch.classifier[1] = nn.Linear(1280, 4)
    fb = ex02.grade("new_head", model=scratch)
    assert not fb.correct and "ImageNet weights" in fb.message


def test_n_trainable(ex02, fresh_imagenet):
    fresh_imagenet.classifier[1] = nn.Linear(1280, 4)
    for p in fresh_imagenet.parameters():
        p.requires_grad = False
    for p in fresh_imagenet.classifier[1].parameters():
        p.requires_grad = True
    trainable = [p for p in fresh_imagenet.parameters() if p.requires_grad]
    assert ex02.grade("n_trainable", value=sum(p.numel() for p in trainable)).correct
    assert not ex02.grade("n_trainable", value=len(trainable)).correct  # tensors, not numbers
    everything = sum(p.numel() for p in fresh_imagenet.parameters())
    assert not ex02.grade("n_trainable", value=everything).correct
