"""``load_dataset``: one entry point that dispatches a data set name to its loader."""

from __future__ import annotations

from pathlib import Path

from ganmix.datasets._common import check_image_size
from ganmix.datasets._digits import load_digits_dataset
from ganmix.datasets._folder import load_image_folder
from ganmix.datasets._medmnist_npz import load_medmnist
from ganmix.datasets._types import DatasetError, ImageDataset
# Names and sizes are known without torch (datasets/catalog.py); re-exported for the loaders' callers.
from ganmix.datasets.catalog import dataset_names, medmnist_key, native_image_size  # noqa: F401
from ganmix.datasets.names import FOLDER_PREFIX, canonical_name


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    size: int | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> ImageDataset:
    """Load a data set by name: "digits", a MedMNIST flag such as "breastmnist", or "folder:/path".

    data_dir: folder of MedMNIST .npz files (default $GANMIX_DATA_DIR or ~/.ganmix/data).
    size: MedMNIST only, which MedMNIST+ file to read: 28 (`<flag>.npz`, the default), 64, 128 or 224
        (`<flag>_<size>.npz`).
    image_size: square side in pixels; default the native size (see native_image_size).
    seed: only for image folders, whose splits are drawn at load time; digits and MedMNIST
        splits are fixed so their fingerprints never change.
    download: fetch a missing MedMNIST file with the medmnist package.
    """
    check_image_size(image_size)
    name = canonical_name(name)
    key = medmnist_key(name, size)
    if key is not None:
        return load_medmnist(key, data_dir=data_dir, size=size, image_size=image_size, download=download)
    if name.startswith(FOLDER_PREFIX):
        root = name[len(FOLDER_PREFIX) :].strip()
        if not root:
            raise DatasetError(f"data set name {name!r} has no path; expected {FOLDER_PREFIX}/path/to/images")
        return load_image_folder(root, image_size=image_size, seed=seed)
    return load_digits_dataset(image_size=image_size)
