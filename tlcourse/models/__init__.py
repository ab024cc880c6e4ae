"""Pretrained backbones (:mod:`.backbones`), their preprocessing (:mod:`.preprocessing`),
freezing / unfreezing by stage (:mod:`.freezing`), BatchNorm folding for frozen
inference (:mod:`.folding`) and test-time augmentation (:mod:`.test_time_augmentation`)."""
from .backbones import (
    OFFLINE_BACKBONES,
    SPECS,
    available_backbones,
    count_parameters,
    create_model,
    feature_dim,
    get_head,
    get_spec,
    imagenet_categories,
    load_backbone,
    pooled_features,
    replace_head,
    spec_for,
    split_at,
    stage_modules,
    stage_names,
    stage_of_parameters,
    stage_sequence,
)
from .folding import fold_batchnorm
from .modes import evaluating, keep_frozen_bn_in_eval
from .test_time_augmentation import FlipAverage
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .freezing import (
    FreezingError,
    Trap,
    check_freezing,
    find_freezing_traps,
    freeze,
    freeze_audit,
    snapshot,
    trainable_stages,
    unfreeze,
    unfreeze_top,
)
