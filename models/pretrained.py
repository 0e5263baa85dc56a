"""torchvision's ImageNet backbones as classifiers: their weights file, the input adapter, the builders.

A backbone sees what its weights were trained on: 3 channels (grayscale repeated), the weights' own
mean/std, at `classifier_size` px. The weights live in torchvision's own cache (torch.hub.get_dir()/checkpoints,
under the basename of `weights.url`), so a file a user placed there by hand is found as torchvision would find
it. Trials only ever read that file (`load_weights`); the one download is the search driver's (`fetch_weights`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganmix.models.errors import MissingWeightsError

# The choices live in models/choices.py (no torch: the Recipe judges them); re-exported here.
from ganmix.models.choices import BACKBONES, MIN_BACKBONE_SIZE, PRETRAINED, PRETRAINED_SIZE  # noqa: E402,F401


def weights_enum(family: str) -> Any:
    """torchvision's DEFAULT weights of `family` (e.g. ResNet18_Weights.DEFAULT)."""
    import torchvision

    return getattr(torchvision.models, BACKBONES[family][1]).DEFAULT


def weights_path(family: str) -> Path:
    """Where torchvision keeps (and looks for) `family`'s ImageNet weights file; honours $TORCH_HOME."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_enum(family).url)


def missing_message(family: str) -> str:
    weights, path = weights_enum(family), weights_path(family)
    return (f"classifier {family!r} with pretrained 'imagenet': weights file {path.name} is not in torchvision's "
            f"cache {path.parent} and could not be downloaded; download {weights.url} on a machine with internet "
            f"and copy it to {path} (or set $TORCH_HOME to a folder whose hub/checkpoints/ holds it)")


def fetch_weights(family: str) -> Path:
    """The weights file of `family`, downloaded into torchvision's cache when absent (the driver, once)."""
    path = weights_path(family)
    if path.is_file():
        return path
    try:  # torchvision's own download: a temporary file beside the target, removed on failure
        torch.hub.load_state_dict_from_url(weights_enum(family).url, progress=False, check_hash=True,
                                           weights_only=True)
    except Exception:  # offline, a proxy, a bad hash: the fix is the same
        raise MissingWeightsError(missing_message(family)) from None
    return path


def load_weights(family: str) -> dict[str, torch.Tensor]:
    """`family`'s ImageNet state dict from torchvision's cache; never downloads (a trial must not)."""
    path = weights_path(family)
    if not path.is_file():
        raise MissingWeightsError(missing_message(family))
    return torch.load(path, map_location="cpu", weights_only=True)


def install_weights(payload: dict[str, bytes]) -> None:
    """Put the search driver's weights files ({file name: bytes}) into this node's torchvision cache; a file
    already there is kept."""
    from ganmix.models.files import atomic_write

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for name, data in payload.items():
        target = folder / name
        if not (target.is_file() and target.stat().st_size == len(data)):
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data)


class InputAdapter(nn.Module):
    """Maps the trainer's [-1, 1] images to what the wrapped network expects: resized to `size`, and for an
    ImageNet backbone 3 channels in [0, 1] normalised by the weights' mean/std."""

    def __init__(self, net: nn.Module, *, size: int, imagenet: bool, mean: tuple[float, ...] = (),
                 std: tuple[float, ...] = ()) -> None:
        super().__init__()
        self.net, self.size, self.imagenet = net, size, imagenet
        self.register_buffer("mean", torch.tensor(mean or (0.0,)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or (1.0,)).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.size)
        if self.imagenet:
            x = (x + 1) / 2
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = (x - self.mean) / self.std
        return self.net(x)


def build_backbone(family: str, *, num_classes: int, size: int, pretrained: str) -> nn.Module:
    """torchvision's `family` with a `num_classes` head behind an InputAdapter; ImageNet weights when asked."""
    import torchvision

    weights = weights_enum(family)
    net = getattr(torchvision.models, BACKBONES[family][0])(weights=None)
    if pretrained == "imagenet":
        net.load_state_dict(load_weights(family))
    _replace_head(net, num_classes)
    preset = weights.transforms()  # mean/std only: no download
    return InputAdapter(net, size=size, imagenet=True, mean=tuple(preset.mean), std=tuple(preset.std))


def _replace_head(net: nn.Module, num_classes: int) -> None:
    if isinstance(getattr(net, "fc", None), nn.Linear):  # ResNets
        net.fc = nn.Linear(net.fc.in_features, num_classes)
        return
    head = net.classifier  # EfficientNet, ConvNeXt: the Linear is the last layer of `classifier`
    head[-1] = nn.Linear(head[-1].in_features, num_classes)
