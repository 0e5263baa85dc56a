"""What a run is called and which params it logs: short, readable names for the MLflow runs table.

Pure functions of a recipe dict (Recipe.to_dict()), so they are unit-testable and work on recipes
read back from MLflow as well as on live ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Recipe fields that only mean something when a generator runs; a real-only run logs none of them.
GENERATOR_FIELDS = ("gan_epochs", "latent_dim", "generator_options", "allocation", "filter_threshold")
NO_GENERATOR = "none"


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


def run_name(recipe: Mapping[str, Any], *, baseline: bool = False) -> str:
    """`baseline`, `real-only lr=3e-4 flip`, `acgan r=1.86 e=37 z=16`: what a trial is, at a glance."""
    if baseline or recipe.get("baseline"):
        return "baseline"
    if is_real_only(recipe):
        parts = ["real-only", f"lr={short_number(recipe.get('classifier_lr'))}"]
    else:
        parts = [str(recipe["generator"]), f"r={short_number(recipe.get('synthetic_ratio'))}",
                 f"e={short_number(recipe.get('gan_epochs'))}", f"z={short_number(recipe.get('latent_dim'))}"]
        if recipe.get("allocation") == "balance":
            parts.append("bal")
    augment = _augment(recipe)
    if augment:
        parts.append(augment)
    return " ".join(parts)


def run_params(recipe: Mapping[str, Any]) -> dict[str, str]:
    """Flat string params for MLflow (mappings flattened with dots); a real-only recipe logs
    generator "none" and no generator fields, so the runs table never shows a generator it did not use."""
    real_only = is_real_only(recipe)
    params: dict[str, str] = {}
    for key, value in recipe.items():
        if real_only and key in GENERATOR_FIELDS:
            continue
        if isinstance(value, Mapping):
            params.update({f"{key}.{k}": str(v) for k, v in value.items()})
        else:
            params[key] = str(value)
    if real_only:
        params["generator"] = NO_GENERATOR
    return params
