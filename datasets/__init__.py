"""Data set loaders: every loader returns an ImageDataset. No Ray, no MLflow.

``load_dataset`` is the entry point; ``apply_scarcity`` then thins the train split to
simulate small or imbalanced data.
"""

from ganmix.datasets._common import resize_images
from ganmix.datasets._load import dataset_names, load_dataset, native_image_size
from ganmix.datasets._medmnist_info import MEDMNIST_FLAGS, MEDMNIST_SIZES
from ganmix.datasets._scarcity import apply_scarcity, parse_class_fraction
from ganmix.datasets._types import DatasetError, ImageDataset, Split

__all__ = [
    "MEDMNIST_FLAGS",
    "MEDMNIST_SIZES",
    "DatasetError",
    "ImageDataset",
    "Split",
    "apply_scarcity",
    "dataset_names",
    "load_dataset",
    "native_image_size",
    "parse_class_fraction",
    "resize_images",
]
