"""What a run is called and which params it logs: short, readable names for the MLflow runs table.

Pure functions of a recipe dict (Recipe.to_dict()), so they are unit-testable and work on recipes
read back from MLflow as well as on live ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ganmix.search.recipe import GENERATOR_FIELDS, NO_GENERATOR

__all__ = ["GENERATOR_FIELDS", "NO_GENERATOR", "is_real_only", "run_name", "short_number"]


def is_real_only(recipe: Mapping[str, Any]) -> bool:
    """No synthetic image reaches the classifier: generator "none" or a synthetic ratio of 0."""
    generator = recipe.get("generator")
    return generator in (None, "", NO_GENERATOR) or float(recipe.get("synthetic_ratio") or 0.0) == 0.0


def short_number(value: Any) -> str:
    """3 significant digits, exponent form for small values: 0.0003 -> 3e-4, 1.8571 -> 1.86, 37 -> 37."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) >= 1):
        return str(int(value))
    if value != 0 and abs(value) < 0.01:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:.3g}"


def _augment(recipe: Mapping[str, Any]) -> str:
    """The classifier's augmentation, when the recipe has one (issue 7 adds the field)."""
    augment = recipe.get("augment")
    if augment in (None, "", False, NO_GENERATOR, "off"):
        return ""
    if isinstance(augment, (list, tuple)):
        return "+".join(str(a) for a in augment)
    return str(augment)


def _latent_dim(recipe: Mapping[str, Any]) -> Any:
    """A latent family's code size: a generator option now, a recipe field before recipe format 3."""
    options = recipe.get("generator_options")
    if isinstance(options, Mapping) and "latent_dim" in options:
        return options["latent_dim"]
    return recipe.get("latent_dim")


def run_name(recipe: Mapping[str, Any], *, baseline: bool = False) -> str:
    """`baseline`, `real-only lr=3e-4 flip`, `acgan r=1.86 e=37 z=16`: what a trial is, at a glance."""
    if baseline or recipe.get("baseline"):
        return "baseline"
    if is_real_only(recipe):
        parts = ["real-only", f"lr={short_number(recipe.get('classifier_lr'))}"]
    else:
        parts = [str(recipe["generator"]), f"r={short_number(recipe.get('synthetic_ratio'))}",
                 f"e={short_number(recipe.get('generator_epochs', recipe.get('gan_epochs')))}"]
        latent = _latent_dim(recipe)
        if latent is not None:
            parts.append(f"z={short_number(latent)}")
        if recipe.get("allocation") == "balance":
            parts.append("bal")
    augment = _augment(recipe)
    if augment:
        parts.append(augment)
    return " ".join(parts)
