"""cvae's light description (no torch): its config, search space and test options (models/families.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ganmix.models._gan_info import CONV_SIZE_RULE, LATENT_SPACE, TINY_OPTIONS
from ganmix.models.families import FamilyInfo
from ganmix.models.generator_config import GeneratorConfig, check_float, check_int


@dataclass(frozen=True, kw_only=True)
class CVAEConfig(GeneratorConfig):
    lr: float = 1e-3
    latent_dim: int = 64
    kl_weight: float = 1.0  # beta of a beta-VAE: 1.0 is the plain ELBO
    width: int = 32  # channels of the widest-resolution conv layer; deeper layers double it
    size_rule: ClassVar[str] = CONV_SIZE_RULE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("latent_dim", self.latent_dim, low=1, high=4096)
        check_float("kl_weight", self.kl_weight)
        check_int("width", self.width, low=1)


FAMILY = FamilyInfo(family="cvae", config_cls=CVAEConfig,
                    search_space={**LATENT_SPACE, "kl_weight": {"type": "float", "low": 0.1, "high": 2.0, "log": True}},
                    tiny_options=TINY_OPTIONS)
