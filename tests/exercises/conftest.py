"""Fixtures of the exercise-engine tests: isolated environment, banks, real MobileNetV2s.

Every test here runs under ``exercise_env`` (tests/conftest.py): the repository's banks, a
progress file of its own, no exam or headless mode leaking in from the shell.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from torch import nn

from tlcourse.exercises import Exercises


@pytest.fixture(autouse=True)
def _isolated(exercise_env: Path) -> None:
    """Every exercise test runs in the environment ``exercise_env`` sets up."""


@pytest.fixture(scope="session")
def banks() -> Path:
    """The repository's question banks."""
    return Path(__file__).resolve().parents[2] / "exercises" / "banks"


@pytest.fixture()
def load_exercises() -> Callable[..., Exercises]:
    """``load_exercises("03_freezing")``: a bank for learner ``ana``, headless, progress in the test's file."""

    def load(bank: str = "example", **kwargs) -> Exercises:
        kwargs.setdefault("learner", "ana")
        kwargs.setdefault("headless", True)
        return Exercises.load(bank, **kwargs)

    return load


@pytest.fixture()
def ex(request: pytest.FixtureRequest, load_exercises: Callable[..., Exercises]) -> Exercises:
    """The bank of the lesson a test module is about: the module says which in ``BANK``."""
    return load_exercises(request.module.BANK)


@pytest.fixture(scope="session")
def _pristine_mobilenets() -> dict[int, nn.Module]:
    return {}


@pytest.fixture()
def mobilenet(_pristine_mobilenets: dict[int, nn.Module]) -> Callable[[int], nn.Module]:
    """``mobilenet(15)``: a fresh pretrained MobileNetV2 with a new 15-way head, all trainable.

    Each size is built once per session and deep-copied per call, so a test may change it freely.
    """
    from tlcourse.models import create_model

    def make(num_classes: int) -> nn.Module:
        if num_classes not in _pristine_mobilenets:
            _pristine_mobilenets[num_classes] = create_model("mobilenet_v2", num_classes)[0]
        return copy.deepcopy(_pristine_mobilenets[num_classes])

    return make


@pytest.fixture(scope="session")
def imagenet() -> nn.Module:
    """The ImageNet MobileNetV2 (1000-way head) in eval mode: read it, or deep-copy it before changing it."""
    from tlcourse.models import load_backbone

    return load_backbone("mobilenet_v2").eval()


@pytest.fixture(scope="session")
def probe_grid():
    """Real linear probes on chest X-rays (PneumoniaMNIST, 32 px): 2 sizes x 3 seeds, with their
    test predictions; lessons 06 and 08 grade their learners' tables and metrics on these."""
    from tlcourse import experiments

    budget = experiments.Budget(image_size=32, test_images=60, device="cpu")
    return experiments.run_grid(["pneumoniamnist"], [2, 6], ["linear_probe"], [0, 1, 2], budget,
                                progress=False, keep_runs=True)
