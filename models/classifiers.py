"""Classifier families for small images, behind a registry. Every model maps float [-1, 1] images to logits."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from ganmix.models._registry import Registry
from ganmix.models.sizes import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

# Up to this size every classifier runs its first stage at full resolution; above it, a strided stem
# brings the first stage back to at most this size, so 128..256 px cost about what 64 px does (a
# full-resolution first stage at 256 px holds about 16 MB of activations per image and per map).
FULL_RESOLUTION_MAX = 64


class ClassifierConfigError(ValueError):
    """Bad arguments for a classifier (channel count, class count, image size)."""


class ClassifierFactory(Protocol):
    def __call__(self, *, in_channels: int, num_classes: int, image_size: int) -> nn.Module: ...


CLASSIFIERS: Registry[ClassifierFactory] = Registry("classifier")


def list_classifiers() -> list[str]:
    return CLASSIFIERS.names()


def create_classifier(name: str, *, in_channels: int, num_classes: int, image_size: int, pretrained: str = "none",
                      classifier_size: int | None = None) -> nn.Module:
    """Build classifier `name` (see `list_classifiers()`) for `image_size` px data; raises UnknownModelError or
    ClassifierConfigError. `pretrained` "imagenet" loads torchvision's ImageNet weights (a backbone of
    models/pretrained.py, from torchvision's cache: never downloaded here); the input is resized to
    `classifier_size` (default: 224 px with ImageNet weights, the data's size otherwise)."""
    from ganmix.models.pretrained import BACKBONES, MIN_BACKBONE_SIZE, InputAdapter, build_backbone

    factory = CLASSIFIERS.get(name)
    size = resolved_classifier_size(name, pretrained=pretrained, classifier_size=classifier_size,
                                    image_size=image_size)
    _check_shape(name, in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    _check_shape(name, in_channels=in_channels, num_classes=num_classes, image_size=size)
    if size < MIN_BACKBONE_SIZE.get(name, 0):
        raise ClassifierConfigError(f"{name}: needs inputs of at least {MIN_BACKBONE_SIZE[name]} px, got {size}; "
                                    "set classifier_size")
    if pretrained == "imagenet":
        if name not in BACKBONES:
            raise ClassifierConfigError(f"{name}: has no ImageNet weights; pretrained 'imagenet' takes one of "
                                        f"{sorted(BACKBONES)}")
        return build_backbone(name, num_classes=num_classes, size=size, pretrained=pretrained)
    if pretrained != "none":
        raise ClassifierConfigError(f"{name}: pretrained must be 'none' or 'imagenet', got {pretrained!r}")
    model = factory(in_channels=in_channels, num_classes=num_classes, image_size=size)
    # A from-scratch network built for the data's size runs bare (old recipes run as they ran).
    return model if size == image_size else InputAdapter(model, size=size, imagenet=False)


def resolved_classifier_size(name: str, *, pretrained: str, classifier_size: int | None, image_size: int) -> int:
    """The size the classifier sees: `classifier_size`, else 224 px for ImageNet weights, else the data's
    (raised to a backbone's minimum: convnext_tiny's stride-32 body needs 32 px, so 8..256 px data all classify)."""
    from ganmix.models.pretrained import MIN_BACKBONE_SIZE, PRETRAINED_SIZE

    if classifier_size is not None:
        return classifier_size
    return PRETRAINED_SIZE if pretrained == "imagenet" else max(image_size, MIN_BACKBONE_SIZE.get(name, 0))


def _check_shape(name: str, *, in_channels: int, num_classes: int, image_size: int) -> None:
    if in_channels < 1:
        raise ClassifierConfigError(f"{name}: in_channels must be >= 1, got {in_channels}")
    if num_classes < 2:
        raise ClassifierConfigError(f"{name}: num_classes must be >= 2, got {num_classes}")
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ClassifierConfigError(f"{name}: image_size must be in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} px, "
                                    f"got {image_size}")


def stem_halvings(image_size: int) -> int:
    """Stride-2 layers a classifier adds before its first stage: 0 up to 64 px, 1 at 65..128, 2 at 129..256."""
    return max(0, (-(-image_size // FULL_RESOLUTION_MAX) - 1).bit_length())


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three stages of two conv-bn-relu blocks (the 2nd and 3rd stages halve the size), global average pool, linear.

    About 30 MMAC per 28 px image, so an epoch over a few hundred images takes well under a second on a CPU.
    Above 64 px the first stage's blocks stride 2 (one at 65..128 px, both at 129..256), see stem_halvings.
    `forward_features` exposes the pooled penultimate vector, which the reference classifier uses as its embedding.
    """

    def __init__(self, *, in_channels: int, num_classes: int, widths: tuple[int, int, int] = (32, 64, 128),
                 image_size: int = FULL_RESOLUTION_MAX) -> None:
        super().__init__()
        w1, w2, w3 = widths
        halvings = stem_halvings(image_size)
        self.body = nn.Sequential(
            _conv_bn_relu(in_channels, w1, 2 if halvings >= 1 else 1),
            _conv_bn_relu(w1, w1, 2 if halvings >= 2 else 1),
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
    return SmallCNN(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


@CLASSIFIERS.register("resnet18")
def resnet18(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """torchvision ResNet-18 (random init, never downloaded) with a CIFAR-style stem.

    The ImageNet stem (7x7 stride-2 conv + max-pool) would shrink a 28 px image to 7 px before the first
    residual stage; a 3x3 stride-1 conv without max-pool keeps the full resolution there. Above 64 px the
    ImageNet stem comes back (stride 2, and the max-pool above 128 px: see stem_halvings), so the first
    stage never runs above 64 px.
    """
    halvings = stem_halvings(image_size)
    # Imported here: torchvision pulls in torch._dynamo (about 1.4 s on 2 cores), which every trial
    # process and the search driver would otherwise pay even when no trial uses resnet18.
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if halvings == 0:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    else:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if halvings < 2:
        model.maxpool = nn.Identity()
    return model


def _torchvision_backbone(family: str) -> ClassifierFactory:
    def factory(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
        """torchvision's architecture with its ImageNet stem, random init (pretrained "none")."""
        from ganmix.models.pretrained import build_backbone

        return build_backbone(family, num_classes=num_classes, size=image_size, pretrained="none")

    return factory


# resnet18 is registered above (from scratch); with pretrained "imagenet" create_classifier builds
# torchvision's own for every name in models/pretrained.BACKBONES.
for _family in ("resnet50", "efficientnet_b0", "convnext_tiny"):
    CLASSIFIERS.register(_family)(_torchvision_backbone(_family))
