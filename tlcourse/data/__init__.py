"""Real datasets for the course: registry (:mod:`.registry`), downloads (:mod:`.download`),
decoded-tensor datasets and splits (:mod:`.datasets`), transforms (:mod:`.transforms`)."""
from .datasets import (
    ImageTensorDataset,
    Splits,
    decode_images,
    limit_images,
    load_dataset,
    load_image_folder,
    split_dataset,
    take_per_class,
)
from .registry import DATASETS, DatasetInfo, get_info, is_available, locate
from .transforms import AUGMENTATIONS, Mirror, eval_transform, train_transform
