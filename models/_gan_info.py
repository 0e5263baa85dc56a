"""The light facts the conv families share (no torch): their search dimensions, test options, size rule, the
DiffAugment policy grammar and GANConfig. models/_gan_blocks.py builds the networks; models/<family>_info.py
describe each family from these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ganmix.models.errors import GeneratorError
from ganmix.models.generator_config import GeneratorConfig, check_int

# Search dimensions every latent family adds by default, and the GANs' DiffAugment choice (spec YAML form).
LATENT_SPACE = {"latent_dim": [16, 32, 64, 128, 256]}
GAN_SPACE = {**LATENT_SPACE, "diffaugment": ["", "color,translation,cutout"]}
TINY_OPTIONS = {"width": 4, "latent_dim": 8}
# The rule every conv family (the GANs, the cVAE) states when it refuses a size.
CONV_SIZE_RULE = "depth follows the size: a 4..8 px map doubled floor(log2(size / 4)) times, then centre-cropped"
# DiffAugment's transforms by name, in the order models/diffaugment.py implements them (a test keeps both equal).
DIFFAUGMENT_ITEMS = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' -> (); unknown items raise GeneratorError."""
    if not isinstance(policy, str):
        raise GeneratorError(f"diffaugment policy must be a string, got {policy!r}")
    if not policy.strip():
        return ()
    items = tuple(item.strip() for item in policy.split(","))
    for item in items:
        if item not in DIFFAUGMENT_ITEMS:
            raise GeneratorError(
                f"unknown DiffAugment item {item!r} in policy {policy!r}; "
                f"expected a comma list of {sorted(DIFFAUGMENT_ITEMS)}"
            )
    return items


@dataclass(frozen=True, kw_only=True)
class GANConfig(GeneratorConfig):
    """Options every GAN family shares."""

    latent_dim: int = 64
    diffaugment: str = ""  # "" or a comma list of "color", "translation", "cutout"
    width: int = 32  # channels of the widest-resolution conv layer; deeper layers double it
    size_rule: ClassVar[str] = CONV_SIZE_RULE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("latent_dim", self.latent_dim, low=1, high=4096)
        parse_policy(self.diffaugment)
        check_int("width", self.width, low=1)
