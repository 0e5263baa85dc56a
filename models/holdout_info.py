"""holdout's light description (no torch): the positive control's config and labels (models/families.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ganmix.models.families import FamilyInfo
from ganmix.models.generator_config import GeneratorConfig

# How a run, a table or a verdict names the control (never just "holdout").
CONTROL_LABEL = "holdout (control)"
NEEDS_HELDOUT = ("generator: holdout is a positive control that returns train images the scarcity options left "
                 "out, so it needs train_per_class or class_fraction")


@dataclass(frozen=True, kw_only=True)
class HoldoutConfig(GeneratorConfig):
    """No options: the control has nothing to tune."""


FAMILY = FamilyInfo(family="holdout", config_cls=HoldoutConfig, cpu_default=False, control=True)
