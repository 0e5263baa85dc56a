"""`holdout`: a positive control, not a generator. It returns real train images that the scarcity options
(`train_per_class`, `class_fraction`) left out of the training split.

Those images are real and unseen by the classifier, so mixing them in is the best any generator could do:
a search plus `confirm` that cannot see this lift cannot see a generator's either. The control trains
nothing and keeps no weights; its "samples" are a seeded draw from the held-out pool of each asked class,
without replacement while the pool lasts, then from fresh permutations of the same pool (every held-out
image is used k or k+1 times: repeats only once every image of its class was used). It is never in the
default search space (`control = True`); a spec names it explicitly. Val and test images are never in the
pool: it is the complement of the kept train images within the train split (datasets/_scarcity.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ganmix.models._images import to_unit
from ganmix.models.errors import GeneratorError
from ganmix.models.generator import GenerativeModel, register_generator

from ganmix.models.holdout_info import CONTROL_LABEL, FAMILY, NEEDS_HELDOUT, HoldoutConfig  # noqa: F401


@register_generator
class Holdout(GenerativeModel):
    family = FAMILY.family
    config_cls = HoldoutConfig
    cpu_default = FAMILY.cpu_default
    control = FAMILY.control

    def __init__(self, cfg: HoldoutConfig) -> None:
        super().__init__(cfg)
        self.pool_images = torch.empty((0, cfg.channels, cfg.image_size, cfg.image_size), dtype=torch.uint8)
        self.pool_labels = torch.empty(0, dtype=torch.int64)

    @classmethod
    def from_pool(cls, cfg: HoldoutConfig, images: Tensor, labels: Tensor) -> Holdout:
        """The control over held-out uint8 `images` (N, C, H, W) with int64 `labels` (N,)."""
        model = cls(cfg)
        shape = (cfg.channels, cfg.image_size, cfg.image_size)
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != shape or len(images) != len(labels):
            raise GeneratorError(f"holdout pool must be uint8 (N, {', '.join(map(str, shape))}) with N labels, got "
                                 f"{images.dtype} {tuple(images.shape)} and {len(labels)} labels")
        model.pool_images, model.pool_labels = images.cpu(), labels.cpu().long()
        return model

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # no parameters: the pool stays on the CPU

    def pool_counts(self) -> list[int]:
        return torch.bincount(self.pool_labels, minlength=self.config.num_classes).tolist()

    def train_step(self, real: Tensor, labels: Tensor) -> dict[str, Tensor]:
        raise GeneratorError("generator: holdout is a control and is never trained (its generator epochs are ignored)")

    def draw(self, labels: Tensor, *, seed: int) -> Tensor:
        """Pool indices, one per label: per class a seeded permutation of its pool, repeated (re-permuted)
        once exhausted. A class with an empty pool is an error: the caller asks only for classes it has."""
        labels = labels.cpu().long()
        picked = torch.empty(len(labels), dtype=torch.int64)
        pool = self.pool_labels.numpy()
        for cls in torch.unique(labels).tolist():
            slots = (labels == cls).nonzero().squeeze(1)
            members = np.flatnonzero(pool == cls)
            if len(members) == 0:
                raise GeneratorError(f"generator: holdout has no held-out train image of class {cls}; the scarcity "
                                     "options kept all of them")
            rng = np.random.default_rng([seed, cls])
            rounds = -(-len(slots) // len(members))
            order = np.concatenate([rng.permutation(members) for _ in range(rounds)])[:len(slots)]
            picked[slots] = torch.from_numpy(order)
        return picked

    def sample(self, labels: Tensor, *, seed: int, batch_size: int = 512) -> Tensor:
        return to_unit(self.pool_images[self.draw(labels, seed=seed)])
