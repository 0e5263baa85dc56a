"""Pre-flight checks of the search spec and the recipe-level flags: each space dimension is probed by
building a Recipe at its ends, so every field's range keeps one home (the Recipe). Imports torch (the
Recipe's validation asks the model registries)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ganmix.search.preflight.errors import PreflightError
from ganmix.search.preflight.paths import check_name
from ganmix.search.space import CategoricalDim, Dim, FloatDim, IntDim, SpaceError

if TYPE_CHECKING:
    import argparse

    from ganmix.search.spec import SearchSpec

def check_image_size_flag(args: argparse.Namespace) -> None:
    """--image-size, held to the generators' sizes: a search trains generators, and one range in the message
    (not the classifiers' wider one for some values and the generators' for others)."""
    if getattr(args, "image_size", None) is not None:
        check_image_size(args.image_size, "--image-size")


def check_image_size(size: int | None, label: str = "image_size") -> None:
    """Generators support fewer sizes than classifiers; a search trains generators, so it is held to theirs."""
    from ganmix.models.generator import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

    if size is not None and not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise PreflightError(f"{label} must be an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}] (the sizes the "
                             f"generators support), got {size!r}")


def check_spec(spec: SearchSpec, *, sample_metrics: bool = True) -> None:
    """Everything in the spec that a trial would otherwise find out only at run time."""
    if spec.name is not None:
        check_name(spec.name)
    check_image_size(spec.image_size)
    from ganmix.search.recipe import GAN_FIELDS, NO_GENERATOR, REAL_ONLY

    base = spec.base_recipe()
    for field, dim in spec.space.items():
        if base.generator == NO_GENERATOR and "generator" not in spec.space and field in GAN_FIELDS:
            continue  # a fixed real-only search never draws them
        for what, value in _probe_values(dim):
            # A real-only choice comes with its constants, as the define-by-run space sets them.
            extra = REAL_ONLY if field == "generator" and value == NO_GENERATOR else {}
            _try_recipe(f"space.{field}", what, value, base, {field: value, **extra})
    from ganmix.models.generator import list_generators

    for family, options in spec.generator_space.items():
        if family not in list_generators():
            raise SpaceError(f"generator_space.{family}: unknown generator family; expected some of "
                             f"{list_generators()}")
        for option, dim in options.items():
            for what, value in _probe_values(dim):
                _try_recipe(f"generator_space.{family}.{option}", what, value, base,
                            {"generator": family, "generator_options": {option: value}})
    if spec.constraints and not sample_metrics:
        raise PreflightError(f"constraints on {sorted(spec.constraints)} need sample metrics; drop "
                             "--no-sample-metrics or the constraints")


def _probe_values(dim: Dim) -> Iterable[tuple[str, Any]]:
    """Values that stand for the whole dimension: both ends of a range (the recipe's ranges are intervals)."""
    if isinstance(dim, CategoricalDim):
        return [("choice", value) for value in dim.choices]
    assert isinstance(dim, (IntDim, FloatDim))
    return [("low", dim.low), ("high", dim.high)]


def _try_recipe(label: str, what: str, value: Any, base: Any, changes: dict[str, Any]) -> None:
    from ganmix.search.recipe import RecipeError

    try:
        base.replace(**changes)
    except RecipeError as exc:
        raise SpaceError(f"{label}: {what} {value!r} is not a valid value ({exc})") from None
