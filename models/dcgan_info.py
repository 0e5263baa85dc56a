"""dcgan's light description (no torch): its config, search space and test options (models/families.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ganmix.models._gan_info import GAN_SPACE, TINY_OPTIONS, GANConfig
from ganmix.models.families import FamilyInfo


@dataclass(frozen=True, kw_only=True)
class DCGANConfig(GANConfig):
    """No options beyond the shared GAN ones (latent_dim, diffaugment, width)."""


FAMILY = FamilyInfo(family="dcgan", config_cls=DCGANConfig, search_space=GAN_SPACE, tiny_options=TINY_OPTIONS)
