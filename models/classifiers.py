"""Classifier families for small images, behind a registry. Every model maps float [-1, 1] images to logits."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from ganmix.models._registry import Registry

# Below 8 px the two stride-2 stages of small_cnn would leave less than 2x2 pixels to pool.
MIN_IMAGE_SIZE = 8


class ClassifierConfigError(ValueError):
    """Bad arguments for a classifier (channel count, class count, image size)."""


class ClassifierFactory(Protocol):
    def __call__(self, *, in_channels: int, num_classes: int, image_size: int) -> nn.Module: ...


CLASSIFIERS: Registry[ClassifierFactory] = Registry("classifier")


def list_classifiers() -> list[str]:
    return CLASSIFIERS.names()


def create_classifier(name: str, *, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Build classifier `name` (see `list_classifiers()`); raises UnknownModelError or ClassifierConfigError."""
    factory = CLASSIFIERS.get(name)
    _check_shape(name, in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    return factory(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def _check_shape(name: str, *, in_channels: int, num_classes: int, image_size: int) -> None:
    if in_channels < 1:
        raise ClassifierConfigError(f"{name}: in_channels must be >= 1, got {in_channels}")
    if num_classes < 2:
        raise ClassifierConfigError(f"{name}: num_classes must be >= 2, got {num_classes}")
    if image_size < MIN_IMAGE_SIZE:
        raise ClassifierConfigError(f"{name}: image_size must be >= {MIN_IMAGE_SIZE} px, got {image_size}")


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three stages of two conv-bn-relu blocks (the 2nd and 3rd stages halve the size), global average pool, linear.

    About 30 MMAC per 28 px image, so an epoch over a few hundred images takes well under a second on a CPU.
    `forward_features` exposes the pooled penultimate vector, which the reference classifier uses as its embedding.
    """

    def __init__(self, *, in_channels: int, num_classes: int, widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.body = nn.Sequential(
            _conv_bn_relu(in_channels, w1, 1),
            _conv_bn_relu(w1, w1, 1),
            _conv_bn_relu(w1, w2, 2),
            _conv_bn_relu(w2, w2, 1),
            _conv_bn_relu(w2, w3, 2),
            _conv_bn_relu(w3, w3, 1),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(w3, num_classes)
        self.feature_dim = w3

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@CLASSIFIERS.register("small_cnn")
def small_cnn(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    # image_size is accepted for a uniform factory signature; global pooling makes the net size-agnostic.
    del image_size
    return SmallCNN(in_channels=in_channels, num_classes=num_classes)


@CLASSIFIERS.register("resnet18")
def resnet18(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """torchvision ResNet-18 (random init, never downloaded) with a CIFAR-style stem.

    The ImageNet stem (7x7 stride-2 conv + max-pool) would shrink a 28 px image to 7 px before the first
    residual stage; a 3x3 stride-1 conv without max-pool keeps the full resolution there.
    """
    del image_size
    import torchvision  # here, not at the top: importing it costs ~1.5 s that only resnet18 needs

    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
