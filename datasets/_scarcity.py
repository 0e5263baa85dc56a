"""Simulated data scarcity and class imbalance: seeded subsampling of the train split only."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch

from ganmix.datasets._common import require_train_classes
from ganmix.datasets._types import ImageDataset
# The rules on labels alone need no torch (the pre-flight data check uses them); parse_class_fraction re-exported.
from ganmix.datasets.scarcity_rules import (  # noqa: F401
    check_train_per_class,
    fractions_by_index,
    kept_indices,
    parse_class_fraction,
)


def apply_scarcity(
    ds: ImageDataset,
    *,
    train_per_class: int | None = None,
    class_fraction: Mapping[str, float] | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Subsample the train split per class; val and test are returned untouched.

    ``train_per_class`` caps every class at that many images; ``class_fraction`` then keeps
    round(fraction * count) of the named classes (at least one); scarcity_rules.kept_indices draws them. The
    train images left out become `heldout` (the `holdout` control's pool; empty when the cap kept everything).
    """
    check_train_per_class(train_per_class)
    fractions = fractions_by_index(ds.class_names, ds.name, class_fraction or {})
    require_train_classes(ds, source=f"data set {ds.name!r}")
    if train_per_class is None and not fractions:
        return ds

    kept = kept_indices(ds.train.labels.numpy(), ds.num_classes, train_per_class=train_per_class, fractions=fractions,
                        seed=seed)
    train = ds.train.subset(torch.from_numpy(kept))
    heldout = ds.train.subset(torch.from_numpy(np.setdiff1d(np.arange(len(ds.train.labels)), kept)))

    applied = [f"train_per_class={train_per_class}"] if train_per_class is not None else []
    if fractions:
        pairs = ", ".join(f"{ds.class_names[i]!r}: {f:g}" for i, f in fractions.items())
        applied.append(f"class_fraction={{{pairs}}}")
    counts = ", ".join(f"{n}={c}" for n, c in zip(ds.class_names, train.class_counts(ds.num_classes)))
    note = (f"scarcity {' '.join(applied)} (seed={seed}): train {len(ds.train)} -> {len(train)} ({counts}); "
            f"{len(heldout)} held out")
    description = f"{ds.description}; {note}" if ds.description else note
    return dataclasses.replace(ds, train=train, description=description, heldout=heldout)
