"""``load_dataset``: one entry point that dispatches a data set name to its loader."""

from __future__ import annotations

from pathlib import Path

from ganmix.datasets._common import check_image_size
from ganmix.datasets._digits import load_digits_dataset
from ganmix.datasets._folder import load_image_folder
from ganmix.datasets._medmnist_info import MEDMNIST_CLASSES, MEDMNIST_FLAGS, UNSUPPORTED_FLAGS
from ganmix.datasets._medmnist_npz import load_medmnist
from ganmix.datasets._types import DatasetError, ImageDataset
from ganmix.datasets.names import FOLDER_PREFIX, canonical_name



def dataset_names() -> list[str]:
    """Every accepted name, for --help: digits, the MedMNIST flags, and the folder form."""
    return ["digits", *MEDMNIST_FLAGS, f"{FOLDER_PREFIX}<path>"]


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> ImageDataset:
    """Load a data set by name: "digits", a MedMNIST flag such as "breastmnist", or "folder:/path".

    data_dir: folder of MedMNIST .npz files (default $GANMIX_DATA_DIR or ~/.ganmix/data).
    image_size: square side in pixels; default the native size (8 digits, 28 MedMNIST, 64 folders).
    seed: only for image folders, whose splits are drawn at load time; digits and MedMNIST
        splits are fixed so their fingerprints never change.
    download: fetch a missing MedMNIST file with the medmnist package.
    """
    check_image_size(image_size)
    if not isinstance(name, str):
        raise DatasetError(f"data set name must be a string, got {name!r}")
    name = canonical_name(name)
    if name.startswith(FOLDER_PREFIX):
        root = name[len(FOLDER_PREFIX) :].strip()
        if not root:
            raise DatasetError(f"data set name {name!r} has no path; expected {FOLDER_PREFIX}/path/to/images")
        return load_image_folder(root, image_size=image_size, seed=seed)

    key = name
    if key == "digits":
        return load_digits_dataset(image_size=image_size)
    if key in UNSUPPORTED_FLAGS:
        raise DatasetError(UNSUPPORTED_FLAGS[key])
    if key in MEDMNIST_CLASSES:
        return load_medmnist(key, data_dir=data_dir, image_size=image_size, download=download)
    raise DatasetError(f"unknown data set {name!r}; expected one of: {', '.join(dataset_names())}")
