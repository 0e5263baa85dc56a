"""Reading and checking a MedMNIST-style .npz with numpy alone (no torch): the arrays every loader starts from,
so the pre-flight data check (datasets/light.py) answers a bad file before torch is imported; the loader
(datasets/_medmnist_npz.py) wraps the same arrays as tensors without a copy."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ganmix.datasets._medmnist_info import MEDMNIST_URL, medmnist_file
from ganmix.datasets.errors import DatasetError, MissingDataError

SPLIT_NAMES = ("train", "val", "test")
EXPECTED_KEYS = tuple(f"{split}_{kind}" for split in SPLIT_NAMES for kind in ("images", "labels"))
# What np.load raises for a truncated, non-zip or pickled file.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


def default_data_dir() -> Path:
    """$GANMIX_DATA_DIR, else ~/.ganmix/data."""
    env = os.environ.get("GANMIX_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".ganmix" / "data"


def missing_file_error(path: Path, reason: str) -> DatasetError:
    return MissingDataError(
        f"MedMNIST file {path} is missing and {reason}; download {MEDMNIST_URL.format(file=path.name)} by hand "
        f"and save it as {path} (or pass data_dir / set GANMIX_DATA_DIR to the folder holding {path.name})", path
    )


def images_nchw(array: np.ndarray, *, path: Path, key: str) -> np.ndarray:
    """(N, H, W) grayscale or (N, H, W, 3) RGB uint8 -> (N, C, H, W)."""
    if array.dtype != np.uint8:
        raise DatasetError(f"{path}: {key} has dtype {array.dtype}; expected uint8")
    if array.ndim == 4 and array.shape[-1] == 3:
        array = array.transpose(0, 3, 1, 2)
    elif array.ndim == 3:
        array = array[:, None]
    else:
        raise DatasetError(f"{path}: {key} has shape {array.shape}; expected (N, H, W) or (N, H, W, 3)")
    if array.shape[-1] != array.shape[-2]:
        raise DatasetError(f"{path}: {key} images are {array.shape[-2]}x{array.shape[-1]}; expected square images")
    return np.ascontiguousarray(array)


def labels_1d(array: np.ndarray, *, path: Path, key: str, num_classes: int) -> np.ndarray:
    """(N, 1) or (N,) integer labels -> int64 (N,), each in 0..num_classes-1."""
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{path}: {key} has dtype {array.dtype}; expected integer class indices")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim != 1:
        raise DatasetError(f"{path}: {key} has shape {array.shape}; expected (N, 1) or (N,) (one label per image)")
    labels = array.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(
            f"{path}: {key} holds labels {int(labels.min())}..{int(labels.max())}; "
            f"expected 0..{num_classes - 1} ({num_classes} classes)"
        )
    return labels


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """All expected arrays of the archive, or a DatasetError naming the file and what is wrong."""
    # np.load takes any file that is not a zip or .npy for a pickle ("contains pickled data"): say what it is.
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not zipfile.is_zipfile(path) and magic != b"\x93NUMPY":
        raise DatasetError(f"{path}: not a readable .npz (not a zip archive; expected numpy arrays "
                           f"{', '.join(EXPECTED_KEYS)})")
    try:
        loaded = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise DatasetError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from exc
    expected = ", ".join(EXPECTED_KEYS)
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
        raise DatasetError(f"{path}: holds a single array; expected an .npz archive with keys {expected}")
    with loaded:
        missing = [key for key in EXPECTED_KEYS if key not in loaded.files]
        if missing:
            raise DatasetError(f"{path}: missing key(s) {', '.join(missing)}; expected keys {expected}")
        try:
            return {key: loaded[key] for key in EXPECTED_KEYS}
        except _READ_ERRORS as exc:  # e.g. object arrays, which need pickle
            raise DatasetError(f"{path}: cannot read its arrays ({type(exc).__name__}: {exc})") from exc


def read_medmnist_arrays(path: Path, *, num_classes: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The three official splits of one MedMNIST-style .npz as (uint8 images (N, C, H, W), int64 labels (N,)),
    validated."""
    arrays = read_arrays(path)
    splits = {}
    for split in SPLIT_NAMES:
        images = images_nchw(arrays[f"{split}_images"], path=path, key=f"{split}_images")
        labels = labels_1d(arrays[f"{split}_labels"], path=path, key=f"{split}_labels", num_classes=num_classes)
        if len(images) != len(labels):
            raise DatasetError(f"{path}: {split}_images has {len(images)} images but {split}_labels has {len(labels)}")
        splits[split] = (images, labels)
    return splits


def medmnist_path(flag: str, *, data_dir: str | Path | None, size: int | None) -> Path:
    """Where `flag`'s `size` px file belongs; DatasetError when a folder stands there."""
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    path = folder / medmnist_file(flag, size)
    if path.is_dir():
        raise DatasetError(f"MedMNIST file {path} is a folder; expected the .npz file "
                           f"{MEDMNIST_URL.format(file=path.name)} saved under that name")
    return path
