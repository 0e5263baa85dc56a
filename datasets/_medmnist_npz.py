"""MedMNIST(+) 2D loader: reads ``<data_dir>/<flag>.npz`` (28 px) or ``<flag>_<size>.npz`` (64, 128, 224 px)
with its official splits."""

from __future__ import annotations

from pathlib import Path

import torch

from ganmix.datasets._common import build_dataset, resize_images
from ganmix.datasets._medmnist_download import DownloadFailed, download_medmnist
# The numpy half (reading and checking the file) needs no torch; re-exported for the loader's callers.
from ganmix.datasets._medmnist_arrays import (  # noqa: F401
    EXPECTED_KEYS,
    SPLIT_NAMES,
    default_data_dir,
    medmnist_path,
    missing_file_error,
    read_medmnist_arrays,
)
from ganmix.datasets._medmnist_info import MEDMNIST_CLASSES, NATIVE_SIZE
from ganmix.datasets._types import DatasetError, ImageDataset, Split
from ganmix.datasets.catalog import check_medmnist_size


def read_medmnist_npz(path: Path, *, num_classes: int) -> dict[str, Split]:
    """The three official splits of one MedMNIST-style .npz, validated (by numpy: _medmnist_arrays.py)."""
    return {split: Split(torch.from_numpy(images), torch.from_numpy(labels))
            for split, (images, labels) in read_medmnist_arrays(path, num_classes=num_classes).items()}


def load_medmnist(
    flag: str, *, data_dir: str | Path | None = None, size: int | None = None, image_size: int | None = None,
    download: bool = True,
) -> ImageDataset:
    """One supported MedMNIST 2D flag (see MEDMNIST_CLASSES) from its `size` px file (None: 28), downloading
    it when missing and allowed, resized to `image_size` when given."""
    check_medmnist_size(size)
    class_names = MEDMNIST_CLASSES[flag]
    path = medmnist_path(flag, data_dir=data_dir, size=size)
    if not path.is_file():
        if not download:
            raise missing_file_error(path, "download=False")
        try:
            download_medmnist(flag, path.parent, size=size or NATIVE_SIZE)
        except DownloadFailed as exc:
            raise missing_file_error(path, f"the download failed ({exc})") from exc

    splits = read_medmnist_npz(path, num_classes=len(class_names))
    file_size = int(splits["train"].images.shape[-1])
    if file_size != (size or NATIVE_SIZE):  # a file saved under the wrong name would train at the wrong size
        raise DatasetError(f"{path}: holds {file_size} px images; expected {size or NATIVE_SIZE} px for this file name")
    if image_size is not None:
        splits = {name: Split(resize_images(s.images, image_size), s.labels) for name, s in splits.items()}
    resized = f", resized to {image_size} px" if image_size not in (None, file_size) else ""
    return build_dataset(
        source=str(path),
        name=flag,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        class_names=class_names,
        description=f"MedMNIST {flag} from {path} (official splits){resized}",
    )
