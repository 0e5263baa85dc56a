"""Helpers every loader shares: resizing, seeded stratified splitting, argument checks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# stratified_split lives beside the digits' arrays, torch-free (the pre-flight check splits them); re-exported.
from ganmix.datasets._digits_arrays import stratified_split  # noqa: F401
from ganmix.datasets._types import DatasetError, ImageDataset, Split
from ganmix.datasets.scarcity_rules import require_classes

# Interpolating a whole MedMNIST split at once as float32 can take gigabytes
# (pathmnist at 64 px is ~4 GB), so resizing runs in chunks of this many images.
_RESIZE_CHUNK = 4096


def check_image_size(image_size: int | None) -> None:
    """Reject a non-integer or non-positive target size before any file is read."""
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DatasetError(f"image_size must be a positive integer (pixels per side), got {image_size!r}")


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square-resize uint8 (N, C, H, W) images to (N, C, size, size): bilinear with antialiasing.

    Antialiasing matters when shrinking (e.g. X-rays to 64 px): plain bilinear aliases.
    Returns the input unchanged when it already has the requested size.
    """
    check_image_size(size)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DatasetError(f"resize expects uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if tuple(images.shape[-2:]) == (size, size):
        return images
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for start in range(0, len(images), _RESIZE_CHUNK):
        chunk = images[start : start + _RESIZE_CHUNK].float()
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + _RESIZE_CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def split_from_indices(images: torch.Tensor, labels: torch.Tensor, index: np.ndarray) -> Split:
    """Select rows of one image/label pair as a Split."""
    return Split(images, labels).subset(torch.from_numpy(np.asarray(index, dtype=np.int64)))


def build_dataset(
    *, source: str, name: str, train: Split, val: Split, test: Split, class_names: tuple[str, ...], description: str
) -> ImageDataset:
    """An ImageDataset checked to have training images of every class.

    ImageDataset's own errors do not know where the data came from, so they are prefixed with
    ``source`` (the file or folder that was read).
    """
    try:
        ds = ImageDataset(name=name, train=train, val=val, test=test, class_names=class_names, description=description)
    except DatasetError as exc:
        raise DatasetError(f"{source}: {exc}") from exc
    require_train_classes(ds, source=source)
    return ds


def require_train_classes(ds: ImageDataset, *, source: str) -> None:
    """Every class needs training images: a GAN cannot be conditioned on a class it never saw."""
    require_classes(ds.train.class_counts(ds.num_classes), ds.class_names, source=source)
