"""What ganmix knows about a data set by its name alone, without reading a file or importing torch: the names
it accepts, the size each loads at, and which MedMNIST file a name and `size` pick. The Recipe judges sizes
through here, so a bad name or size is answered before any heavy import."""

from __future__ import annotations

from ganmix.datasets._medmnist_info import MEDMNIST_CLASSES, MEDMNIST_FLAGS, MEDMNIST_SIZES, NATIVE_SIZE, UNSUPPORTED_FLAGS
from ganmix.datasets.errors import DatasetError
from ganmix.datasets.names import FOLDER_PREFIX, canonical_name

DIGITS_SIZE = 8  # scikit-learn's digits are 8 x 8
DIGITS_CLASSES = tuple(str(d) for d in range(10))  # the loader's class names: its labels 0..9 as text
FOLDER_SIZE = 64  # an image folder's images are resized to this unless image_size says otherwise


def dataset_names() -> list[str]:
    """Every accepted name, for --help: digits, the MedMNIST flags, and the folder form."""
    return ["digits", *MEDMNIST_FLAGS, f"{FOLDER_PREFIX}<path>"]


def check_medmnist_size(size: object) -> None:
    if size is not None and (isinstance(size, bool) or size not in MEDMNIST_SIZES):
        raise DatasetError(f"size must be one of {list(MEDMNIST_SIZES)} (the MedMNIST+ file sizes), got {size!r}")


def native_image_size(name: str, *, size: int | None = None) -> int:
    """The size a data set loads at without `image_size`: 8 digits, `size` (28) MedMNIST, 64 folders.
    Known without reading a file, so a size can be judged before any work."""
    name = canonical_name(name)
    key = medmnist_key(name, size)
    if key is not None:
        return size or NATIVE_SIZE
    return FOLDER_SIZE if name.startswith(FOLDER_PREFIX) else DIGITS_SIZE


def known_class_names(name: str) -> tuple[str, ...] | None:
    """The class names of a data set known by name (digits, a MedMNIST flag); None for an image folder,
    whose classes are its subfolders."""
    key = canonical_name(name)
    if key == "digits":
        return DIGITS_CLASSES
    return MEDMNIST_CLASSES.get(key)


def medmnist_key(name: object, size: int | None) -> str | None:
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
