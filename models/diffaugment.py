"""DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

Random, differentiable transforms applied to every discriminator input, real and fake alike, so
a discriminator trained on a few hundred images cannot simply memorise them. Inputs are float
(N, C, H, W) in [-1, 1]; every sample draws its own random parameters from torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganmix.models._gan_info import DIFFAUGMENT_ITEMS, parse_policy  # noqa: F401 - the policy grammar, torch-free

TRANSLATION_RATIO = 0.125  # shift by up to 1/8 of the image, as in the paper
CUTOUT_RATIO = 0.5  # erase a square half the image's side


def _per_sample(x: Tensor) -> Tensor:
    return torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)


def _color(x: Tensor) -> Tensor:
    x = x + (_per_sample(x) - 0.5)  # brightness
    if x.size(1) > 1:  # saturation is meaningless (the identity) on one channel
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_per_sample(x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(x) + 0.5) + mean  # contrast


def _translation(x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    dy, dx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    # Pad by the largest shift, then gather a shifted window per sample: rows, then columns.
    padded = F.pad(x, [dx, dx, dy, dy])
    rows = torch.arange(h, device=x.device) + dy + torch.randint(-dy, dy + 1, (n, 1), device=x.device)
    cols = torch.arange(w, device=x.device) + dx + torch.randint(-dx, dx + 1, (n, 1), device=x.device)
    x = padded.gather(2, rows[:, None, :, None].expand(n, c, h, padded.size(3)))
    return x.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def _cutout(x: Tensor) -> Tensor:
    n, _, h, w = x.shape
    size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    # Square centres may sit on the border, so part of the square can fall outside the image.
    top = torch.randint(0, h + (1 - size_h % 2), (n, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w + (1 - size_w % 2), (n, 1), device=x.device) - size_w // 2
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    inside_rows = (ys >= top) & (ys < top + size_h)  # (n, h)
    inside_cols = (xs >= left) & (xs < left + size_w)  # (n, w)
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


# Its names are DIFFAUGMENT_ITEMS (the light grammar the configs check); tests/test_families.py keeps them equal.
AUGMENTS: dict[str, Callable[[Tensor], Tensor]] = {
    "color": _color,
    "translation": _translation,
    "cutout": _cutout,
}


def diff_augment(x: Tensor, policy: str) -> Tensor:
    """Apply the policy's transforms in order; the result keeps x's shape and stays differentiable."""
    for item in parse_policy(policy):
        x = AUGMENTS[item](x)
    return x
