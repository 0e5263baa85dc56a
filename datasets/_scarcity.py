"""Simulated data scarcity and class imbalance: seeded subsampling of the train split only."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch

from ganmix.datasets._common import require_train_classes
from ganmix.datasets._types import DatasetError, ImageDataset


def _check_fraction(key: str, fraction: float) -> None:
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
    _check_fraction(key, fraction)
    return key, fraction


def _resolve_class(ds: ImageDataset, key: str) -> int:
    """Class index for a class name or an index written as a string; names win when both match."""
    if key in ds.class_names:
        return ds.class_names.index(key)
    if key.strip().isdigit() and int(key) < ds.num_classes:
        return int(key)
    raise DatasetError(
        f"class_fraction: unknown class {key!r} for data set {ds.name!r}; "
        f"expected one of {list(ds.class_names)} or an index 0..{ds.num_classes - 1}"
    )


def _fractions_by_index(ds: ImageDataset, class_fraction: Mapping[str, float]) -> dict[int, float]:
    by_index: dict[int, float] = {}
    for key, fraction in class_fraction.items():
        _check_fraction(key, float(fraction))
        index = _resolve_class(ds, str(key))
        if index in by_index:
            raise DatasetError(f"class_fraction names class {ds.class_names[index]!r} twice (as name and index)")
        by_index[index] = float(fraction)
    return by_index


def apply_scarcity(
    ds: ImageDataset,
    *,
    train_per_class: int | None = None,
    class_fraction: Mapping[str, float] | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Subsample the train split per class; val and test are returned untouched.

    ``train_per_class`` caps every class at that many images; ``class_fraction`` then keeps
    round(fraction * count) of the named classes (at least one). Each class draws from its own
    generator seeded by (seed, class index), and the cap and the fraction take prefixes of the
    same permutation, so a smaller setting always keeps a subset of a larger one. The train images left
    out become `heldout` (the `holdout` control's pool; empty when the cap kept everything).
    """
    if train_per_class is not None and (
        isinstance(train_per_class, bool) or not isinstance(train_per_class, int) or train_per_class < 1
    ):
        raise DatasetError(f"train_per_class must be an integer >= 1, got {train_per_class!r}")
    fractions = _fractions_by_index(ds, class_fraction or {})
    require_train_classes(ds, source=f"data set {ds.name!r}")
    if train_per_class is None and not fractions:
        return ds

    labels = ds.train.labels.numpy()
    kept: list[np.ndarray] = []
    for cls in range(ds.num_classes):
        members = np.random.default_rng([seed, cls]).permutation(np.flatnonzero(labels == cls))
        keep = len(members) if train_per_class is None else min(train_per_class, len(members))
        if cls in fractions:
            keep = max(1, round(fractions[cls] * keep))
        kept.append(members[:keep])
    kept_index = np.sort(np.concatenate(kept))
    train = ds.train.subset(torch.from_numpy(kept_index))
    heldout = ds.train.subset(torch.from_numpy(np.setdiff1d(np.arange(len(labels)), kept_index)))

    applied = [f"train_per_class={train_per_class}"] if train_per_class is not None else []
    if fractions:
        pairs = ", ".join(f"{ds.class_names[i]!r}: {f:g}" for i, f in fractions.items())
        applied.append(f"class_fraction={{{pairs}}}")
    counts = ", ".join(f"{n}={c}" for n, c in zip(ds.class_names, train.class_counts(ds.num_classes)))
    note = (f"scarcity {' '.join(applied)} (seed={seed}): train {len(ds.train)} -> {len(train)} ({counts}); "
            f"{len(heldout)} held out")
    description = f"{ds.description}; {note}" if ds.description else note
    return dataclasses.replace(ds, train=train, description=description, heldout=heldout)
