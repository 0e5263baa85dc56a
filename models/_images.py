"""uint8 <-> float conversion shared by every model: models see [-1, 1], data sets hold uint8."""

from __future__ import annotations

import torch


def to_unit(images: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 (N, C, H, W) in 0..255 -> float32 in [-1, 1] on `device`."""
    images = images.to(device) if device is not None else images
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 0..255 on the CPU (what the real data looks like)."""
    return images.detach().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8).cpu()
