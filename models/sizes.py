"""The one place that judges an image size against the models that will see it.

Classifiers take 8..256 px (models/classifiers.py reads the range from here); each generator family
states its own range and rule on its config class (`GeneratorConfig.size_problem`), read from its light
description (models/families.py: no torch). The Recipe and the
search pre-flight both call `check_image_size`, so a size is refused before any data is read or any
model is built, in the same words wherever it was given.
"""

from __future__ import annotations

from collections.abc import Iterable

MIN_IMAGE_SIZE = 8  # below it the classifiers' and generators' stride-2 stages leave nothing to pool
MAX_IMAGE_SIZE = 256  # the largest size any model (the classifiers) takes; generators stop earlier


class ImageSizeError(ValueError):
    """An image size that a chosen model cannot take; the message names the model and its rule."""


def is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_image_size(size: object, *, generators: Iterable[str] = (), label: str = "image_size") -> None:
    """Raise ImageSizeError unless `size` suits the classifiers (all take 8..256 px) and every named
    generator family. Unknown family names are left to the registry, which lists the known ones."""
    if not is_size(size) or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:  # type: ignore[operator]
        raise ImageSizeError(f"{label} must be an integer in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} (pixels per side; "
                             f"classifiers take up to {MAX_IMAGE_SIZE}, generators up to {max_generator_size()}), "
                             f"got {size!r}")
    from ganmix.models.families import family_info, family_names

    known = family_names()
    for name in generators:
        if name in known:
            problem = family_info(name).config_cls.size_problem(size)  # type: ignore[arg-type]
            if problem:
                raise ImageSizeError(f"{label} {size} does not suit generator {name!r}: {problem}")


def max_generator_size() -> int:
    """The largest size some registered generator family takes."""
    from ganmix.models.families import family_info, family_names

    return max(family_info(name).config_cls.max_image_size for name in family_names())
