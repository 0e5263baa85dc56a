"""A data set read for checking only: numpy arrays, no torch (the pre-flight data check answers a bad file in
well under a second this way, where the loaders' tensors would first import torch).

MedMNIST files and the embedded digits are read this way (the digits so that a search can start Ray before
torch is imported); an image folder is decoded image by image, so for it `read_light` returns None and the
caller loads the data set itself. The checks are the loaders' own: the same functions (datasets/_medmnist_arrays.py,
datasets/scarcity_rules.py) raise the same errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganmix.datasets._digits_arrays import digits_arrays, digits_split_indices, digits_uint8
from ganmix.datasets._medmnist_arrays import medmnist_path, missing_file_error, read_medmnist_arrays
from ganmix.datasets._medmnist_info import MEDMNIST_CLASSES, NATIVE_SIZE
from ganmix.datasets.catalog import DIGITS_CLASSES, medmnist_key
from ganmix.datasets.errors import DatasetError
from ganmix.datasets.scarcity_rules import check_train_per_class, fractions_by_index, kept_indices, require_classes


@dataclass(frozen=True)
class LightData:
    """Splits as numpy (uint8 images (N, C, H, W), int64 labels (N,)), scarcity applied to train; `heldout`:
    how many train images the scarcity left out (the loader's `heldout` split)."""

    name: str
    class_names: tuple[str, ...]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    heldout: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def read_light(name: str, *, data_dir: str | Path | None, size: int | None = None, train_per_class: int | None = None,
               class_fraction: Mapping[str, float] | None = None, seed: int = 0) -> LightData | None:
    """A MedMNIST data set's or the digits' splits, checked as load_dataset + apply_scarcity check them, never
    downloaded (a missing file: MissingDataError); None for image folders. Images keep their stored size."""
    flag = medmnist_key(name, size)
    if flag is None:
        if name != "digits":
            return None
        flag, class_names, source = "digits", DIGITS_CLASSES, "sklearn.datasets.load_digits"
        images, labels = digits_uint8(*digits_arrays())
        splits = {split: (images[index], labels[index]) for split, index in digits_split_indices(labels).items()}
    else:
        class_names = MEDMNIST_CLASSES[flag]
        path = medmnist_path(flag, data_dir=data_dir, size=size)
        if not path.is_file():
            raise missing_file_error(path, "download=False")
        source = str(path)
        splits = read_medmnist_arrays(path, num_classes=len(class_names))
        file_size = int(splits["train"][0].shape[-1])
        if file_size != (size or NATIVE_SIZE):  # as load_medmnist: a file saved under the wrong name
            raise DatasetError(f"{path}: holds {file_size} px images; expected {size or NATIVE_SIZE} px for this file "
                               "name")
        shapes = {tuple(images.shape[1:]) for images, _ in splits.values()}
        if len(shapes) != 1:
            raise DatasetError(f"{path}: data set {flag!r}: splits differ in image shape: {sorted(shapes)}")
    require_classes(np.bincount(splits["train"][1], minlength=len(class_names)).tolist(), class_names, source=source)
    check_train_per_class(train_per_class)
    fractions = fractions_by_index(class_names, flag, class_fraction or {})
    heldout = 0
    if train_per_class is not None or fractions:
        images, labels = splits["train"]
        kept = kept_indices(labels, len(class_names), train_per_class=train_per_class, fractions=fractions, seed=seed)
        splits["train"] = (images[kept], labels[kept])
        heldout = len(labels) - len(kept)
    return LightData(name=flag, class_names=class_names, splits=splits, heldout=heldout)
