"""tlcourse: the helper package behind the transfer-learning course.

The notebooks show each idea in plain PyTorch; this package holds the plumbing: pretrained
backbones and their offline weights (:mod:`tlcourse.models`), real datasets
(:mod:`tlcourse.data`), the training loop (:mod:`tlcourse.train`), cached features
(:mod:`tlcourse.features`), plots (:mod:`tlcourse.plots`), exercises
(:mod:`tlcourse.exercises`) and the course itself: lessons, the runner and the command line
(:mod:`tlcourse.course`). ``CONTRIBUTING.md`` maps every module.
"""
__version__ = "0.1.0"

# Every public submodule, so that ``import tlcourse; tlcourse.plots`` works without importing
# torch up front (tests/test_package.py checks this list against the package's folders).
_SUBMODULES = {
    "atomic", "calibration", "course", "csvsafe", "data", "deploy", "device", "errors", "exercises",
    "experiments", "features", "metrics", "models", "paths", "plots", "precision", "safeload", "train",
}


def __getattr__(name: str):
    """Import submodules on first use, so ``import tlcourse`` stays fast (no torch import)."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tlcourse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})
