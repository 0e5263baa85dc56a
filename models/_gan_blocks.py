"""Shared conv builders for every family: a conditional generator, a conv trunk, a discriminator
and the ConvGAN base (networks, optimizers, DiffAugment) that the three GAN families subclass.

Networks are sized from the image size: a `start` x `start` map (4..8 px) is doubled `stages`
times (ConvTranspose2d k4 s2 p1) and centre-cropped when the size is not start * 2**stages (e.g. 9).
Channels double per stage away from the image, up to 8x `width` (at 128 px the fifth stage stays at
8x, as DCGAN's 64 px networks top out at 8x): 8..64 px networks are those of DCGAN's paper.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The light facts (GANConfig, search spaces, size rule) live in models/_gan_info.py; re-exported for the families.
from ganmix.models._gan_info import CONV_SIZE_RULE, GAN_SPACE, LATENT_SPACE, TINY_OPTIONS, GANConfig  # noqa: F401
from ganmix.models.diffaugment import diff_augment
from ganmix.models.generator import GeneratorConfig, LatentGenerator

LABEL_EMBED_DIM = 32
MAX_WIDTH_FACTOR = 8
Norm = Literal["batch", "layer"]


def stage_plan(image_size: int) -> tuple[int, int]:
    """(start, stages) with start * 2**stages >= image_size and start in 4..8."""
    stages = max(1, (image_size // 4).bit_length() - 1)  # floor(log2(image_size / 4))
    start = -(-image_size // 2**stages)  # ceil division
    return start, stages


def stage_width(width: int, stage: int) -> int:
    """Channels `stage` stride-2 layers away from the image: width doubled per stage, capped at 8x."""
    return width * 2 ** min(stage, MAX_WIDTH_FACTOR.bit_length() - 1)


def _norm(kind: Norm, channels: int) -> nn.Module:
    # "layer" normalises each sample on its own (GroupNorm with one group): the WGAN-GP penalty is
    # per sample, which batch norm would break by mixing samples.
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(1, channels)


class ConvGenerator(nn.Module):
    """(z, label) -> image: z concatenated with a label embedding, projected, then upsampled."""

    def __init__(self, *, latent_dim: int, num_classes: int, channels: int, image_size: int, width: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.start, stages = stage_plan(image_size)
        self.base = stage_width(width, stages - 1)
        self.embed = nn.Embedding(num_classes, LABEL_EMBED_DIM)
        self.project = nn.Linear(latent_dim + LABEL_EMBED_DIM, self.base * self.start**2, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(self.base), nn.ReLU(inplace=True)]
        for stage in range(stages - 1, 0, -1):
            ch, out = stage_width(width, stage), stage_width(width, stage - 1)
            layers += [nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        layers.append(nn.ConvTranspose2d(width, channels, 4, 2, 1))
        self.body = nn.Sequential(*layers)

    def raw(self, z: Tensor, labels: Tensor) -> Tensor:
        """Pre-tanh output, cropped to image_size (the cVAE's likelihood uses it directly)."""
        h = self.project(torch.cat([z, self.embed(labels)], dim=1))
        out = self.body(h.view(-1, self.base, self.start, self.start))
        top = (out.size(-1) - self.image_size) // 2
        return out[..., top : top + self.image_size, top : top + self.image_size]

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return torch.tanh(self.raw(z, labels))


def conv_trunk(*, channels: int, image_size: int, width: int, norm: Norm) -> tuple[nn.Sequential, int]:
    """Strided-conv feature extractor mirroring ConvGenerator; returns it and its flat feature size."""
    _, stages = stage_plan(image_size)
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
    size = image_size // 2
    for stage in range(1, stages):
        ch, out = stage_width(width, stage - 1), stage_width(width, stage)
        layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=False), _norm(norm, out), nn.LeakyReLU(0.2, inplace=True)]
        size //= 2
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), stage_width(width, stages - 1) * size * size


class Critique(NamedTuple):
    logit: Tensor  # (N,) real-vs-fake score
    class_logits: Tensor | None  # (N, num_classes) from the auxiliary head, if any


class ConvDiscriminator(nn.Module):
    """Conv trunk plus either a projection head (label-conditional score, Miyato & Koyama 2018)
    or an auxiliary classifier head (ACGAN: unconditional score plus class logits)."""

    def __init__(self, cfg: GeneratorConfig, *, width: int, norm: Norm, auxiliary: bool) -> None:
        super().__init__()
        self.trunk, features = conv_trunk(channels=cfg.channels, image_size=cfg.image_size, width=width, norm=norm)
        self.score = nn.Linear(features, 1)
        self.projection = None if auxiliary else nn.Embedding(cfg.num_classes, features)
        if self.projection is not None:
            # Zero start: D begins unconditional instead of with a huge random label term.
            nn.init.zeros_(self.projection.weight)
        self.classifier = nn.Linear(features, cfg.num_classes) if auxiliary else None

    def forward(self, x: Tensor, labels: Tensor) -> Critique:
        h = self.trunk(x)
        logit = self.score(h).squeeze(1)
        if self.projection is not None:
            logit = logit + (self.projection(labels) * h).sum(dim=1)
        return Critique(logit, self.classifier(h) if self.classifier is not None else None)


def adam(params: Iterator[nn.Parameter], *, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """Adam with the fused kernel (CPU and CUDA): one kernel per step instead of a loop over tensors.

    On 2 CPU cores it takes 0.2 ms per step for a 0.4 M-parameter GAN against 2.1 ms for the default.
    """
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)


def update(optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Skip gradients for `module`'s weights (the discriminator during a generator step)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


def adversarial_bce(logits: Tensor, *, real: bool) -> Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class ConvGAN(LatentGenerator):
    """Generator + discriminator + their Adam optimizers; subclasses write train_step's losses."""

    config: GANConfig

    def __init__(self, cfg: GANConfig, *, norm: Norm, auxiliary: bool, betas: tuple[float, float]) -> None:
        super().__init__(cfg)
        self.generator = ConvGenerator(
            latent_dim=cfg.latent_dim, num_classes=cfg.num_classes, channels=cfg.channels,
            image_size=cfg.image_size, width=cfg.width,
        )
        self.discriminator = ConvDiscriminator(cfg, width=cfg.width, norm=norm, auxiliary=auxiliary)
        # Plain attributes, not submodules: optimizer state is not part of the saved state_dict.
        self.opt_g = adam(self.generator.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas)

    def decode(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.generator(z, labels)

    def augment(self, images: Tensor) -> Tensor:
        """DiffAugment with the config's policy (the identity when it is empty)."""
        return diff_augment(images, self.config.diffaugment)

    def critique(self, images: Tensor, labels: Tensor) -> Critique:
        return self.discriminator(self.augment(images), labels)

    def fake(self, labels: Tensor) -> Tensor:
        return self.decode(self.sample_latent(len(labels)), labels)
