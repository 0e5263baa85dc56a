"""Data set loaders: every loader returns an ImageDataset. No Ray, no MLflow.

``load_dataset`` is the entry point; ``apply_scarcity`` then thins the train split to
simulate small or imbalanced data.
"""

from importlib import import_module
from typing import Any

# Lazy re-exports (PEP 562), as in ganmix.models: `from ganmix.datasets.errors import DatasetError` must not
# import torch, so the CLI can answer bad input before any heavy import.
_WHERE = {
    "resize_images": "_common", "dataset_names": "catalog", "load_dataset": "_load", "native_image_size": "catalog",
    "MEDMNIST_FLAGS": "_medmnist_info", "MEDMNIST_SIZES": "_medmnist_info",
    "apply_scarcity": "_scarcity", "parse_class_fraction": "scarcity_rules", "DatasetError": "errors",
    "MissingDataError": "errors", "ImageDataset": "_types", "Split": "_types",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"ganmix.datasets.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MEDMNIST_FLAGS",
    "MEDMNIST_SIZES",
    "DatasetError",
    "ImageDataset",
    "MissingDataError",
    "Split",
    "apply_scarcity",
    "dataset_names",
    "load_dataset",
    "native_image_size",
    "parse_class_fraction",
    "resize_images",
]
