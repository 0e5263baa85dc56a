"""What a generator family's options are, without torch: the config every family shares, the checks its
fields use, and how a searched value becomes an option (models/families.py builds on it).

A family's typed config (a subclass of GeneratorConfig) lives in its light description beside its module
(e.g. models/dcgan_info.py), so the Recipe, the spec and the pre-flight judge options, sizes and search
spaces in milliseconds; the family's module (torch) takes the same class.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

from ganmix.models.errors import GeneratorError
from ganmix.models.sizes import MIN_IMAGE_SIZE


def check_int(field: str, value: object, *, low: int, high: int | None = None) -> None:
    """Raise GeneratorError unless `value` is an int (not a bool) in low..high."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not ok:
        expected = f"an int in {low}..{high}" if high is not None else f"an int >= {low}"
        raise GeneratorError(f"{field} must be {expected}, got {value!r}")


def check_float(field: str, value: object, *, positive: bool = False) -> None:
    """Raise GeneratorError unless `value` is a finite number >= 0 (> 0 when `positive`)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise GeneratorError(f"{field} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    """Fields every family shares; families subclass it and add their own typed options."""

    image_size: int
    channels: int
    num_classes: int
    batch_size: int = 64
    lr: float = 2e-4
    # The family's image sizes: MIN_IMAGE_SIZE..max_image_size, and the rule its depth follows (its
    # error message states it; models/sizes.py asks it before any work).
    max_image_size: ClassVar[int] = 128
    size_rule: ClassVar[str] = "any size in range"

    @classmethod
    def size_problem(cls, size: int) -> str | None:
        """None when the family takes `size` px images, else what it takes."""
        if MIN_IMAGE_SIZE <= size <= cls.max_image_size:
            return None
        return f"it takes {MIN_IMAGE_SIZE}..{cls.max_image_size} px ({cls.size_rule})"

    def __post_init__(self) -> None:
        size = self.image_size
        if not isinstance(size, int) or isinstance(size, bool) or self.size_problem(size):
            raise GeneratorError(f"image_size must be an int in {MIN_IMAGE_SIZE}..{self.max_image_size} "
                                 f"({self.size_rule}), got {size!r}")
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise GeneratorError(f"channels must be 1 or 3, got {self.channels!r}")
        check_int("num_classes", self.num_classes, low=2)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, positive=True)


def normalise_option(name: str, key: str, value: object, default: object) -> object:
    """A given option value as the plain Python type of its default, or GeneratorError.

    Search spaces hand over numpy scalars, or ints for float fields; store plain Python values so
    configs compare equal and checkpoints stay loadable with weights_only=True."""
    kind = type(default)
    if kind is str:
        if isinstance(value, str):
            return value
    elif kind in (int, float):
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
            if kind is float:
                return number
            if number.is_integer():  # an int option takes 2 or 2.0, never 2.5
                return int(number)
    else:
        return value
    raise GeneratorError(f"option {key!r} of generator {name!r} must be {kind.__name__}, got {value!r}")
