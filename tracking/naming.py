"""What a run is called: short, readable names for the MLflow runs table.

Pure functions of a recipe (search/recipe.py's Recipe, read through the small protocol below so tracking/
imports nothing from search/), so they are unit-testable.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

__all__ = ["NamedRecipe", "run_name", "short_number"]


class NamedRecipe(Protocol):
    """What naming reads of a recipe: whether it is the baseline or real-only (the recipe decides), its fields."""

    baseline: bool

    @property
    def real_only(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


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


def run_name(recipe: NamedRecipe) -> str:
    """`baseline`, `real-only lr=3e-4 flip`, `acgan r=1.86 e=37 z=16`: what a trial is, at a glance."""
    if recipe.baseline:
        return "baseline"
    fields = recipe.to_dict()
    if recipe.real_only:
        parts = ["real-only", f"lr={short_number(fields['classifier_lr'])}"]
    elif getattr(recipe, "control", False):  # a control trains nothing: no epochs to show
        parts = [f"{fields['generator']} (control)", f"r={short_number(fields['synthetic_ratio'])}"]
    else:
        parts = [str(fields["generator"]), f"r={short_number(fields['synthetic_ratio'])}",
                 f"e={short_number(fields['generator_epochs'])}"]
        if "latent_dim" in fields["generator_options"]:  # an option of the families with a latent code
            parts.append(f"z={short_number(fields['generator_options']['latent_dim'])}")
        if fields["allocation"] == "balance":
            parts.append("bal")
    if fields["augment"] != "none":  # the classifier's augmentation (models.choices.AUGMENTATIONS)
        parts.append(str(fields["augment"]))
    return " ".join(parts)
