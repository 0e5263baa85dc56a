"""scikit-learn's 8x8 digits: the embedded, offline default for demos and smoke tests."""

from __future__ import annotations

import torch

from ganmix.datasets._common import build_dataset, resize_images, split_from_indices
from ganmix.datasets._digits_arrays import digits_arrays, digits_split_indices, digits_uint8
from ganmix.datasets._types import ImageDataset
from ganmix.datasets.catalog import DIGITS_CLASSES, DIGITS_SIZE as NATIVE_SIZE


def load_digits_dataset(*, image_size: int | None = None) -> ImageDataset:
    """The 1797 digits as uint8 (N, 1, 8, 8) in 0..255, split 60/20/20 stratified."""
    raw_images, targets = digits_arrays()
    pixels, target_ids = digits_uint8(raw_images, targets)
    images, labels = torch.from_numpy(pixels), torch.from_numpy(target_ids)
    if image_size is not None:
        images = resize_images(images, image_size)
    index = digits_split_indices(targets)
    size = image_size or NATIVE_SIZE
    resized = f", resized to {size} px" if size != NATIVE_SIZE else ""
    return build_dataset(
        source="sklearn.datasets.load_digits",
        name="digits",
        train=split_from_indices(images, labels, index["train"]),
        val=split_from_indices(images, labels, index["val"]),
        test=split_from_indices(images, labels, index["test"]),
        class_names=DIGITS_CLASSES,
        description=f"scikit-learn load_digits (8x8, 0..16 scaled to 0..255), fixed 60/20/20 split{resized}",
    )
