"""Classical augmentation of training batches with kornia.augmentation: the whole batch at once, on its device.

Every image gets its own random parameters (its own flip coin, its own angle, its own TrivialAugment
magnitude) in one batched call, instead of one torchvision v2 call per image (bench/bench_augment.py
measures both; README, Benchmark). Only training batches pass through here; validation, test and the
sample metrics always see the images as they are.

Randomness: kornia draws its parameters from torch's global RNG (on the CPU, whatever the batch's device;
kornia has no per-module generator), so the trainer seeds it from the classifier seed inside a forked RNG
(models/classify.py `fit_classifier`): the same seed gives the same augmented batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ganmix.models.choices import AUGMENTATIONS

if TYPE_CHECKING:
    from torch import nn

__all__ = ["AUGMENTATIONS", "ROTATION_DEGREES", "make_augmenter"]
# Small rotations only: medical images have a canonical orientation, and 28 px leaves little margin.
ROTATION_DEGREES = 15.0


def _pipeline(name: str) -> nn.Module | None:
    if name not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {list(AUGMENTATIONS)}, got {name!r}")
    if name == "none":
        return None
    # Only when augmenting: kornia takes seconds to import, and a spec check never needs it.
    import kornia.augmentation as K
    from torch import nn

    if name == "flip":
        return K.RandomHorizontalFlip(p=0.5)
    if name == "flip_rotate":
        return nn.Sequential(K.RandomHorizontalFlip(p=0.5), K.RandomRotation(ROTATION_DEGREES, p=1.0))
    # kornia's TrivialAugment (Mueller & Hutter, 2021): one op of its default space per call, a magnitude
    # drawn per image (README, classifier protocol, on how this differs from torchvision's per-image draw).
    from kornia.augmentation.auto import TrivialAugment

    return TrivialAugment()


def make_augmenter(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A function uint8 (N, C, H, W) in 0..255 -> float32 (N, C, H, W) in [-1, 1] (what the models see, as
    models/_images.py `to_unit` makes it), on the batch's device; None for `none`.

    kornia works on float images in [0, 1] (its intensity ops, e.g. posterize and solarize, assume that
    range), so the batch is converted once, augmented, and mapped to [-1, 1] without a round trip to uint8.
    """
    pipeline = _pipeline(name)
    if pipeline is None:
        return None

    def augment(batch: torch.Tensor) -> torch.Tensor:
        if batch.dtype != torch.uint8 or batch.ndim != 4:
            raise ValueError(f"augment takes a uint8 (N, C, H, W) batch, got {batch.dtype} {tuple(batch.shape)}")
        unit = batch.float().div_(255.0)
        with torch.no_grad():  # parameters only: nothing here is learned
            out = pipeline(unit)
        return out.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0)

    return augment
