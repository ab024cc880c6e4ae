"""tlcourse: the helper package behind the transfer-learning course.

The notebooks show each idea in plain PyTorch; this package holds the plumbing: offline
pretrained weights (:mod:`tlcourse.assets`, :mod:`tlcourse.models`), real datasets
(:mod:`tlcourse.data`), the training loop (:mod:`tlcourse.training`), cached features
(:mod:`tlcourse.features`), plots (:mod:`tlcourse.visualisation`), exercises
(:mod:`tlcourse.exercises`) and the course runner (:mod:`tlcourse.runner`).
"""
__version__ = "0.1.0"

_SUBMODULES = {
    "assets", "data", "device", "errors", "exercises", "export", "features", "gradcam", "lesson",
    "models", "optim", "pack", "params", "paths", "results", "runner", "training", "visualisation",
}


def __getattr__(name: str):
    """Import submodules on first use, so ``import tlcourse`` stays fast (no torch import)."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tlcourse' has no attribute {name!r}")
