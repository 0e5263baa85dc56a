"""``load_dataset``: one entry point that dispatches a data set name to its loader."""

from __future__ import annotations

from pathlib import Path

from ganmix.datasets import _digits, _folder
from ganmix.datasets._common import check_image_size
from ganmix.datasets._digits import load_digits_dataset
from ganmix.datasets._folder import load_image_folder
from ganmix.datasets._medmnist_info import MEDMNIST_CLASSES, MEDMNIST_FLAGS, NATIVE_SIZE, UNSUPPORTED_FLAGS
from ganmix.datasets._medmnist_npz import check_medmnist_size, load_medmnist
from ganmix.datasets._types import DatasetError, ImageDataset
from ganmix.datasets.names import FOLDER_PREFIX, canonical_name


def dataset_names() -> list[str]:
    """Every accepted name, for --help: digits, the MedMNIST flags, and the folder form."""
    return ["digits", *MEDMNIST_FLAGS, f"{FOLDER_PREFIX}<path>"]


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
    key = _medmnist_key(name, size)
    if key is not None:
        return load_medmnist(key, data_dir=data_dir, size=size, image_size=image_size, download=download)
    if name.startswith(FOLDER_PREFIX):
        root = name[len(FOLDER_PREFIX) :].strip()
        if not root:
            raise DatasetError(f"data set name {name!r} has no path; expected {FOLDER_PREFIX}/path/to/images")
        return load_image_folder(root, image_size=image_size, seed=seed)
    return load_digits_dataset(image_size=image_size)


def native_image_size(name: str, *, size: int | None = None) -> int:
    """The size a data set loads at without `image_size`: 8 digits, `size` (28) MedMNIST, 64 folders.
    Known without reading a file, so a size can be judged before any work."""
    name = canonical_name(name)
    key = _medmnist_key(name, size)
    if key is not None:
        return size or NATIVE_SIZE
    return _folder.DEFAULT_IMAGE_SIZE if name.startswith(FOLDER_PREFIX) else _digits.NATIVE_SIZE


def _medmnist_key(name: object, size: int | None) -> str | None:
    """The MedMNIST flag `name` stands for, None for digits and folders; DatasetError for anything else,
    and for a `size` given with a data set that is not MedMNIST."""
    if not isinstance(name, str):
        raise DatasetError(f"data set name must be a string, got {name!r}")
    check_medmnist_size(size)
    key = canonical_name(name)
    if key in UNSUPPORTED_FLAGS:
        raise DatasetError(UNSUPPORTED_FLAGS[key])
    if key in MEDMNIST_CLASSES:
        return key
    if not (name.startswith(FOLDER_PREFIX) or key == "digits"):
        raise DatasetError(f"unknown data set {name!r}; expected one of: {', '.join(dataset_names())}")
    if size is not None:
        raise DatasetError(f"size {size} picks a MedMNIST+ file; data set {name!r} is not MedMNIST "
                           "(use image_size to resize it)")
    return None
