"""The backbones the course supports, one record each (:mod:`.registry`: weights file,
preprocessing, stages, head), their offline weight files (:mod:`.weights`) and preprocessing
(:mod:`.preprocessing`); new heads, stages and splits (:mod:`.backbones`); freezing /
unfreezing by stage and its audit (:mod:`.freezing`); train/eval mode set and restored module
by module (:mod:`.modes`); BatchNorm folding for frozen inference (:mod:`.folding`),
test-time augmentation (:mod:`.test_time_augmentation`) and heads that read several stages
(:mod:`.stage_reading`)."""
from .backbones import (
    count_parameters,
    create_model,
    cut_after,
    drop_above,
    feature_dim,
    get_head,
    imagenet_categories,
    pooled_features,
    replace_head,
    split_at,
    stage_modules,
    stage_names,
    stage_of_parameters,
    stage_sequence,
)
from .folding import fold_batchnorm
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
from .modes import evaluating, keep_frozen_bn_in_eval
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .registry import (
    BACKBONES,
    OFFLINE_BACKBONES,
    Backbone,
    available_backbones,
    get_spec,
    load_backbone,
    spec_for,
    weight_path,
)
from .stage_reading import FLIPS, ReadStages
from .test_time_augmentation import FlipAverage
