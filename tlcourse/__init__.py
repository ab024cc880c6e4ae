"""tlcourse: the helper package behind the transfer-learning course.

The notebooks show each idea in plain PyTorch; this package holds the plumbing: offline
pretrained weights (:mod:`tlcourse.assets`, :mod:`tlcourse.models`), real datasets
(:mod:`tlcourse.data`), the training loop (:mod:`tlcourse.training`), cached features
(:mod:`tlcourse.features`), plots (:mod:`tlcourse.visualisation`), exercises
(:mod:`tlcourse.exercises`) and the course runner (:mod:`tlcourse.runner`).
"""
__version__ = "0.1.0"
