"""Lesson 02's checkers (``preprocess_function``, ``new_head``) and code exercises, on real models and photos."""
from __future__ import annotations

import copy

import pytest
import torch
from stage_setups import train_only
from torch import nn
from torchvision.models import MobileNet_V2_Weights
from torchvision.transforms import functional as F

from tlcourse.errors import CourseError
from tlcourse.exercises.checkers.lesson02 import new_head, preprocess_function
from tlcourse.models import IMAGENET_MEAN, IMAGENET_STD, create_model, get_spec, load_backbone

BANK = "02_pretrained_models"
MEAN, STD = list(IMAGENET_MEAN), list(IMAGENET_STD)


@pytest.fixture()
def fresh_imagenet(imagenet) -> nn.Module:
    return copy.deepcopy(imagenet)


# --------------------------------------------------------------------------- new_head


def test_new_head(mobilenet, imagenet):
    model = mobilenet(3)
    assert new_head(model, 3).correct
    fb = new_head(model, 5)
    assert not fb.correct and fb.message == "The head has 3 outputs; expected 5, one per class."
    fb = new_head(imagenet, 3)
    assert "1000 outputs (that is still the ImageNet classifier)" in fb.message
    whole = mobilenet(3)
    whole.classifier = nn.Linear(1280, 3)  # dropped the Dropout before the head
    fb = new_head(whole, 3)
    assert "no module at classifier.1" in fb.message and "model.classifier[1] = nn.Linear" in fb.message
    scratch, _ = create_model("mobilenet_v2", 3, pretrained=False)
    fb = new_head(scratch, 3)
    assert "differ from the ImageNet weights" in fb.message and "pretrained=False" in fb.message
    assert new_head(scratch, 3, pretrained=False).correct
    narrow = mobilenet(3)
    narrow.classifier[1] = nn.Linear(640, 3)
    assert "reads 640 features, but the backbone gives 1280" in new_head(narrow, 3).message


def test_new_head_right(ex, fresh_imagenet):
    fresh_imagenet.classifier[1] = nn.Linear(fresh_imagenet.classifier[1].in_features, 4)
    fb = ex.grade("new_head", model=fresh_imagenet)
    assert fb.correct, fb.message


def test_new_head_wrong(ex, fresh_imagenet):
    fb = ex.grade("new_head", model=fresh_imagenet)  # nothing replaced
    assert not fb.correct and "still the ImageNet classifier" in fb.message
    fresh_imagenet.classifier = nn.Linear(1280, 4)  # dropout and the Sequential thrown away
    fb = ex.grade("new_head", model=fresh_imagenet)
    assert not fb.correct and "no module at classifier.1" in fb.message
    scratch = load_backbone("mobilenet_v2", pretrained=False)
    scratch.classifier[1] = nn.Linear(1280, 4)
    fb = ex.grade("new_head", model=scratch)
    assert not fb.correct and "ImageNet weights" in fb.message


def test_n_trainable(ex, fresh_imagenet):
    fresh_imagenet.classifier[1] = nn.Linear(1280, 4)
    trainable = [p for p in train_only(fresh_imagenet, {"head"}).parameters() if p.requires_grad]
    assert ex.grade("n_trainable", value=sum(p.numel() for p in trainable)).correct
    assert not ex.grade("n_trainable", value=len(trainable)).correct  # tensors, not numbers
    everything = sum(p.numel() for p in fresh_imagenet.parameters())
    assert not ex.grade("n_trainable", value=everything).correct


# --------------------------------------------------------------------------- preprocess


def _by_hand(resize=256, crop=224, mean=MEAN, std=STD, scale=255.0, bgr=False, batch=False):
    def preprocess(image):
        if bgr:
            image = image.flip(0)
        image = F.center_crop(F.resize(image, [resize], antialias=True), [crop])
        out = F.normalize(image.float() / scale, mean=mean, std=std)
        return out.unsqueeze(0) if batch else out

    return preprocess


def test_preprocess_right(ex):
    for fn in (_by_hand(), MobileNet_V2_Weights.IMAGENET1K_V1.transforms()):
        fb = ex.grade("preprocess", preprocess=fn)
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
def test_preprocess_mistakes_are_named(ex, wrong, words):
    fb = ex.grade("preprocess", preprocess=wrong)
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
    with pytest.raises(CourseError):
        preprocess_function(_by_hand(), backbone="resnet9000")


def test_resnet_fc_idiom(ex):
    import torchvision

    def resnet():
        return torchvision.models.resnet18(weights=None)

    right = resnet()
    right.fc = nn.Linear(right.fc.in_features, 15)
    assert ex.grade("resnet_fc", model=right).correct
    untouched = ex.grade("resnet_fc", model=resnet())
    assert not untouched.correct and "still the ImageNet classifier" in untouched.message
    wrong_width = resnet()
    wrong_width.fc = nn.Linear(1000, 15)  # the old layer's outputs taken for its inputs
    fb = ex.grade("resnet_fc", model=wrong_width)
    assert not fb.correct and "reads 1000 features" in fb.message
    mobilenet_idiom = resnet()
    mobilenet_idiom.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, 15))  # MobileNetV2's place
    fb = ex.grade("resnet_fc", model=mobilenet_idiom)
    assert not fb.correct and "unexpected tensor" in fb.message
