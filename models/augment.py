"""Classical augmentation of training batches with torchvision.transforms.v2, on the batch's device.

v2 transforms draw one set of random parameters per call, so a batch is transformed image by image:
every image gets its own flip, angle or TrivialAugment op. Only training batches pass through here;
validation, test and the sample metrics always see the images as they are.
"""

from __future__ import annotations

from collections.abc import Callable

from typing import TYPE_CHECKING

import torch

from ganmix.models.choices import AUGMENTATIONS

if TYPE_CHECKING:
    from torchvision.transforms import v2

__all__ = ["AUGMENTATIONS", "ROTATION_DEGREES", "make_augmenter"]
# Small rotations only: medical images have a canonical orientation, and 28 px leaves little margin.
ROTATION_DEGREES = 15.0


def _pipeline(name: str) -> v2.Transform | None:
    if name == "none":
        return None
    from torchvision.transforms import v2  # only when augmenting: torchvision costs ~1.4 s to import

    if name == "flip":
        return v2.RandomHorizontalFlip()
    if name == "flip_rotate":
        return v2.Compose([v2.RandomHorizontalFlip(), v2.RandomRotation(ROTATION_DEGREES)])
    if name == "trivial":
        return v2.TrivialAugmentWide()
    raise ValueError(f"augment must be one of {list(AUGMENTATIONS)}, got {name!r}")


def make_augmenter(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A function uint8 (N, C, H, W) -> uint8 (N, C, H, W), or None for `none`.

    Randomness comes from torch's global RNG (seeded by the trainer), as v2 transforms expect.
    """
    transform = _pipeline(name)
    if transform is None:
        return None

    def augment(batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([transform(image) for image in batch])

    return augment
