"""Real datasets for the course: registry (:mod:`.registry`), downloads (:mod:`.download`),
decoded-tensor datasets and splits (:mod:`.datasets`), transforms (:mod:`.transforms`), checks
of a folder of your own photos (:mod:`.folder_checks`)."""
from .datasets import (
    ImageTensorDataset,
    Splits,
    decode_images,
    is_folder_dataset,
    limit_images,
    load_dataset,
    load_image_folder,
    split_dataset,
    take_per_class,
)
from .folder_checks import FolderReport, check_folder, shared_files
from .registry import DATASETS, DatasetInfo, get_info, is_available, locate
from .transforms import AUGMENTATIONS, Flip, Mirror, eval_transform, train_transform
