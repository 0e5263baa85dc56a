"""acgan's light description (no torch): its config, search space and test options (models/families.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ganmix.models._gan_info import GAN_SPACE, TINY_OPTIONS, GANConfig
from ganmix.models.families import FamilyInfo
from ganmix.models.generator_config import check_float


@dataclass(frozen=True, kw_only=True)
class ACGANConfig(GANConfig):
    aux_weight: float = 1.0  # weight of the auxiliary classification loss for both players

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("aux_weight", self.aux_weight)


FAMILY = FamilyInfo(family="acgan", config_cls=ACGANConfig, search_space=GAN_SPACE, tiny_options=TINY_OPTIONS)
