"""BatchNorm folding: the same function as the frozen network, with no BatchNorm left to run."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tlcourse.errors import CourseError
from tlcourse.models import create_model, fold_batchnorm, split_at


def _batchnorms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_folded_backbone_computes_the_same_features_without_batchnorm(backbone, small_plants):
    model, _ = create_model(backbone, 15, seed=0)
    model.eval()
    bottom, _ = split_at(model, "top")  # every stage below the head
    before = {k: v.clone() for k, v in bottom.state_dict().items()}
    folded = fold_batchnorm(bottom)
    assert _batchnorms(bottom) > 40 and _batchnorms(folded) == 0
    x = torch.stack([small_plants[i][0] for i in range(4)]).float() / 255
    with torch.inference_mode():
        want, got = bottom(x), folded(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    # the original keeps its BatchNorm layers and its pretrained weights
    after = bottom.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_train_mode_is_refused_with_what_to_do():
    with pytest.raises(CourseError, match=r"eval mode.*module\.eval\(\)"):
        fold_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))


class _SharedConv(nn.Module):
    """The convolution's output also feeds the residual sum: folding the BN would change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        h = self.conv(x)
        return self.bn(h) + h


class _ConvTwice(nn.Module):
    """One convolution called twice, the BN after the second call only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(self.conv(x)))


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        if x.sum() > 0:  # depends on the data: torch.fx cannot trace it
            return self.bn(self.conv(x))
        return x


def _with_statistics(m: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(8, 4, 6, 6))  # non-trivial running statistics
    return m.eval()


@pytest.mark.parametrize("cls", [_SharedConv, _ConvTwice, _Untraceable])
def test_pairs_that_cannot_be_folded_are_left_alone(cls):
    m = _with_statistics(cls())
    folded = fold_batchnorm(m)
    assert folded is not m and _batchnorms(folded) == 1
    x = torch.rand(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.allclose(folded(x), m(x), atol=1e-6)


def test_a_plain_pair_is_folded_exactly():
    m = _with_statistics(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()))
    folded = fold_batchnorm(m)
    assert _batchnorms(folded) == 0 and _batchnorms(m) == 1
    x = torch.rand(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.allclose(folded(x), m(x), atol=1e-5)
