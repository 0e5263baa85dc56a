"""The rules of simulated scarcity on labels alone (numpy, no torch): which class a `class_fraction` key names,
and which train images a (train_per_class, class_fraction, seed) keeps. datasets/_scarcity.py applies them to
a loaded data set; the pre-flight data check (datasets/light.py) to the file's labels, before torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ganmix.datasets.errors import DatasetError


def check_fraction(key: str, fraction: float) -> None:
    # Written as a negated range test so that NaN is rejected too.
    if not (0.0 < fraction <= 1.0):
        raise DatasetError(f"class_fraction for {key!r} is {fraction!r}; expected a fraction in (0, 1]")


def parse_class_fraction(text: str) -> tuple[str, float]:
    """'malignant=0.2' -> ('malignant', 0.2); the class may also be given by index ('0=0.2')."""
    key, sep, value = text.rpartition("=")
    key = key.strip()
    if not sep or not key:
        raise DatasetError(f"class fraction {text!r} must look like CLASS=FRACTION, e.g. malignant=0.2 or 0=0.2")
    try:
        fraction = float(value)
    except ValueError:
        raise DatasetError(
            f"class fraction {text!r}: {value.strip()!r} is not a number; expected a fraction in (0, 1]"
        ) from None
    check_fraction(key, fraction)
    return key, fraction


def check_train_per_class(train_per_class: object) -> None:
    if train_per_class is not None and (
        isinstance(train_per_class, bool) or not isinstance(train_per_class, int) or train_per_class < 1
    ):
        raise DatasetError(f"train_per_class must be an integer >= 1, got {train_per_class!r}")


def resolve_class(class_names: Sequence[str], name: str, key: str) -> int:
    """Class index for a class name or an index written as a string; names win when both match."""
    if key in class_names:
        return list(class_names).index(key)
    if key.strip().isdigit() and int(key) < len(class_names):
        return int(key)
    raise DatasetError(
        f"class_fraction: unknown class {key!r} for data set {name!r}; "
        f"expected one of {list(class_names)} or an index 0..{len(class_names) - 1}"
    )


def fractions_by_index(class_names: Sequence[str], name: str, class_fraction: Mapping[str, float]) -> dict[int, float]:
    by_index: dict[int, float] = {}
    for key, fraction in class_fraction.items():
        check_fraction(key, float(fraction))
        index = resolve_class(class_names, name, str(key))
        if index in by_index:
            raise DatasetError(f"class_fraction names class {class_names[index]!r} twice (as name and index)")
        by_index[index] = float(fraction)
    return by_index


def require_classes(counts: Sequence[int], class_names: Sequence[str], *, source: str) -> None:
    """Every class needs training images: a GAN cannot be conditioned on a class it never saw."""
    missing = [f"{name!r} (index {i})" for i, (name, n) in enumerate(zip(class_names, counts)) if n == 0]
    if missing:
        raise DatasetError(
            f"{source}: class {', '.join(missing)} has no training images; every class needs at least one"
        )


def kept_indices(labels: np.ndarray, num_classes: int, *, train_per_class: int | None, fractions: Mapping[int, float],
                 seed: int) -> np.ndarray:
    """The sorted train indices a scarcity setting keeps. Each class draws from its own generator seeded by
    (seed, class index), and the cap and the fraction take prefixes of the same permutation, so a smaller
    setting always keeps a subset of a larger one."""
    kept: list[np.ndarray] = []
    for cls in range(num_classes):
        members = np.random.default_rng([seed, cls]).permutation(np.flatnonzero(labels == cls))
        keep = len(members) if train_per_class is None else min(train_per_class, len(members))
        if cls in fractions:
            keep = max(1, round(fractions[cls] * keep))
        kept.append(members[:keep])
    return np.sort(np.concatenate(kept))
