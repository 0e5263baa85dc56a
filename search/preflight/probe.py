"""Pre-flight checks of the search spec: each space dimension is probed by
building a Recipe at its ends, so every field's range keeps one home (the Recipe). No torch: the Recipe
judges families by their light descriptions (models/families.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ganmix.search.preflight.errors import PreflightError
from ganmix.search.preflight.paths import check_name
from ganmix.search.space import CategoricalDim, Dim, FloatDim, IntDim, SpaceError

if TYPE_CHECKING:
    from ganmix.search.spec import SearchSpec

def check_spec(spec: SearchSpec, *, sample_metrics: bool = True) -> None:
    """Everything in the spec that a trial would otherwise find out only at run time."""
    if spec.name is not None:
        check_name(spec.name)
    from ganmix.search.recipe import GAN_FIELDS, REAL_ONLY, is_real_only

    base = spec.base_recipe()
    for field, dim in spec.space.items():
        if is_real_only(base.generator) and "generator" not in spec.space and field in GAN_FIELDS:
            continue  # a fixed real-only search never draws them
        for what, value in _probe_values(dim):
            # A real-only choice comes with its constants, as the define-by-run space sets them.
            extra = REAL_ONLY if field == "generator" and is_real_only(value) else {}
            if field == "pretrained":  # judged with a searched classifier that has such weights, if any
                extra = _classifier_for(value, spec.space.get("classifier"))
            _try_recipe(f"space.{field}", what, value, base=base, changes={field: value, **extra})
    from ganmix.models.families import family_names

    for family, options in spec.generator_space.items():
        if family not in family_names():
            raise SpaceError(f"generator_space.{family}: unknown generator family; expected some of "
                             f"{family_names()}")
        for option, dim in options.items():
            for what, value in _probe_values(dim):
                _try_recipe(f"generator_space.{family}.{option}", what, value, base=base,
                            changes={"generator": family, "generator_options": {option: value}})
    if spec.constraints and not sample_metrics:
        raise PreflightError(f"constraints on {sorted(spec.constraints)} need sample metrics; drop "
                             "--no-sample-metrics or the constraints")


def _classifier_for(pretrained: Any, classifiers: Dim | None) -> dict[str, Any]:
    """A `pretrained` value is valid or not with some classifier: with the classifier searched, probe it with a
    searched family that has such weights (preflight/weights.py refuses a space that pairs it with one that has
    none); with the classifier fixed, with that one."""
    from ganmix.models.choices import BACKBONES

    if not isinstance(classifiers, CategoricalDim):
        return {}
    fitting = [c for c in classifiers.choices if pretrained == "none" or c in BACKBONES]
    return {"classifier": (fitting or list(classifiers.choices))[0]}


def _probe_values(dim: Dim) -> Iterable[tuple[str, Any]]:
    """Values that stand for the whole dimension: both ends of a range (the recipe's ranges are intervals)."""
    if isinstance(dim, CategoricalDim):
        return [("choice", value) for value in dim.choices]
    assert isinstance(dim, (IntDim, FloatDim))
    return [("low", dim.low), ("high", dim.high)]


def _try_recipe(label: str, what: str, value: Any, *, base: Any, changes: dict[str, Any]) -> None:
    from ganmix.search.recipe import RecipeError

    try:
        base.replace(**changes)
    except RecipeError as exc:
        raise SpaceError(f"{label}: {what} {value!r} is not a valid value ({exc})") from None
