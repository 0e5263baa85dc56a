"""ddpm's light description (no torch): its config, search space and test options (models/families.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ganmix.models.errors import GeneratorError
from ganmix.models.families import FamilyInfo
from ganmix.models.generator_config import GeneratorConfig, check_float, check_int

SIZE_RULE = "depth follows the size: min(3, floor(log2(size / 8)) + 1) halvings, odd sizes padded"


@dataclass(frozen=True, kw_only=True)
class DDPMConfig(GeneratorConfig):
    lr: float = 5e-4
    width: int = 32  # channels of the full-resolution level; deeper levels double it once
    blocks: int = 2  # resnet blocks per level
    train_timesteps: int = 1000  # steps of the forward (noising) process
    sample_steps: int = 50  # DDIM steps when sampling
    guidance_scale: float = 2.0  # classifier-free guidance weight; 1: plain conditional sampling
    label_dropout: float = 0.1  # how often training sees the "no class" label instead of the true one
    ema_decay: float = 0.999  # upper bound of the EMA decay; it warms up as (1 + n) / (10 + n)
    size_rule: ClassVar[str] = SIZE_RULE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("width", self.width, low=2, high=1024)
        if self.width % 2:
            raise GeneratorError(f"width must be even (GroupNorm groups), got {self.width!r}")
        check_int("blocks", self.blocks, low=1, high=8)
        check_int("train_timesteps", self.train_timesteps, low=2, high=10_000)
        check_int("sample_steps", self.sample_steps, low=1, high=self.train_timesteps)
        check_float("guidance_scale", self.guidance_scale)
        check_float("label_dropout", self.label_dropout)
        check_float("ema_decay", self.ema_decay)
        if self.label_dropout > 1 or self.ema_decay >= 1:
            raise GeneratorError(f"label_dropout must be in [0, 1] and ema_decay in [0, 1), got "
                                 f"{self.label_dropout!r} and {self.ema_decay!r}")


FAMILY = FamilyInfo(
    family="ddpm", config_cls=DDPMConfig,
    search_space={
        "width": [32, 64],
        "sample_steps": {"type": "int", "low": 10, "high": 100, "log": True},
        "guidance_scale": {"type": "float", "low": 1.0, "high": 4.0},
    },
    tiny_options={"width": 8, "blocks": 1, "sample_steps": 2, "train_timesteps": 50},
    cpu_default=False,  # about 1 s per 64-image step on 2 CPU cores at width 32 (README)
)
