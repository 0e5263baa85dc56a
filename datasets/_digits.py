"""scikit-learn's 8x8 digits: the embedded, offline default for demos and smoke tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ganmix.datasets._common import build_dataset, resize_images, split_from_indices, stratified_split
from ganmix.datasets._types import ImageDataset

from ganmix.datasets.catalog import DIGITS_CLASSES, DIGITS_SIZE as NATIVE_SIZE

# Fixed on purpose (not the caller's seed): the split, and so the fingerprint, never varies.
_SPLIT_SEED = 20240601
_VAL_FRACTION = 0.2
_TEST_FRACTION = 0.2


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as load_digits returns them, (images (1797, 8, 8) float 0..16, targets int): read
    from the file scikit-learn ships, as load_digits reads it, without importing sklearn.datasets (a second
    of imports before a search can start Ray); load_digits itself where this version keeps no such file."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0], "datasets", "data", "digits.csv.gz") if folders else None
    if path is not None and path.is_file():
        data = np.loadtxt(path, delimiter=",")
        return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def load_digits_dataset(*, image_size: int | None = None) -> ImageDataset:
    """The 1797 digits as uint8 (N, 1, 8, 8) in 0..255, split 60/20/20 stratified."""
    raw_images, targets = digits_arrays()
    # Pixel values are 0..16; scale to the full uint8 range like every other data set.
    pixels = np.rint(raw_images * (255.0 / 16.0)).astype(np.uint8)
    images = torch.from_numpy(pixels).unsqueeze(1)
    labels = torch.from_numpy(targets.astype(np.int64))
    if image_size is not None:
        images = resize_images(images, image_size)

    val_idx, test_idx, train_idx = stratified_split(
        targets, (_VAL_FRACTION, _TEST_FRACTION), seed=_SPLIT_SEED
    )
    size = image_size or NATIVE_SIZE
    resized = f", resized to {size} px" if size != NATIVE_SIZE else ""
    return build_dataset(
        source="sklearn.datasets.load_digits",
        name="digits",
        train=split_from_indices(images, labels, train_idx),
        val=split_from_indices(images, labels, val_idx),
        test=split_from_indices(images, labels, test_idx),
        class_names=DIGITS_CLASSES,
        description=f"scikit-learn load_digits (8x8, 0..16 scaled to 0..255), fixed 60/20/20 split{resized}",
    )
