"""wgan_gp's light description (no torch): its config, search space and test options (models/families.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ganmix.models._gan_info import GAN_SPACE, TINY_OPTIONS, GANConfig
from ganmix.models.families import FamilyInfo
from ganmix.models.generator_config import check_float, check_int


@dataclass(frozen=True, kw_only=True)
class WGANGPConfig(GANConfig):
    lr: float = 1e-4  # the paper's learning rate
    n_critic: int = 5  # critic steps per generator step
    gp_weight: float = 10.0  # lambda of the gradient penalty

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("n_critic", self.n_critic, low=1)
        check_float("gp_weight", self.gp_weight)


FAMILY = FamilyInfo(family="wgan_gp", config_cls=WGANGPConfig,
                    search_space={**GAN_SPACE, "n_critic": {"type": "int", "low": 1, "high": 5}},
                    tiny_options=TINY_OPTIONS)
