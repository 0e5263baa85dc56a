"""scikit-learn's 8x8 digits as numpy arrays and their fixed split, without torch: the loader
(datasets/_digits.py) builds its tensors from these, and the pre-flight data check (datasets/light.py)
judges the same arrays before torch is imported."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Fixed on purpose (not the caller's seed): the split, and so the fingerprint, never varies.
SPLIT_SEED = 20240601
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as load_digits returns them, (images (1797, 8, 8) float 0..16, targets int): read
    from the file scikit-learn ships, as load_digits reads it, without importing sklearn.datasets (a second
    of imports before a search can start Ray); load_digits itself where this version keeps no such file."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0], "datasets", "data", "digits.csv.gz") if folders else None
    if path is not None and path.is_file():
        data = np.loadtxt(path, delimiter=",")
        return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def digits_uint8(raw_images: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 1, 8, 8) in 0..255, int64 labels): pixel values 0..16 scaled to the full uint8 range like
    every other data set."""
    pixels = np.rint(raw_images * (255.0 / 16.0)).astype(np.uint8)
    return pixels[:, None], np.asarray(targets).astype(np.int64)


def digits_split_indices(targets: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed stratified 60/20/20 split, as row indices per split."""
    val, test, train = stratified_split(targets, (VAL_FRACTION, TEST_FRACTION), seed=SPLIT_SEED)
    return {"train": train, "val": val, "test": test}


def stratified_split(labels: np.ndarray, fractions: Sequence[float], *, seed: int) -> list[np.ndarray]:
    """Split sample indices per class into len(fractions) + 1 parts: the held-out parts, then the rest.

    Each class contributes round(fraction * count) samples to each held-out part, at least one
    when the class is large enough to also keep one for the remainder (the training part), so
    small classes still reach every split. Every class keeps at least one sample in the remainder.
    Indices within each part are sorted, so the result depends only on labels and seed.
    """
    labels = np.asarray(labels)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        # One generator per class: a class's split does not depend on the other classes.
        rng = np.random.default_rng([seed, int(cls)])
        members = rng.permutation(np.flatnonzero(labels == cls))
        n = len(members)
        start = 0
        for part, fraction in zip(parts, fractions):
            take = round(fraction * n)
            if take == 0 and n > len(fractions):
                take = 1
            take = min(take, n - start - 1)  # keep one for the remainder
            part.append(members[start : start + take])
            start += take
        parts[-1].append(members[start:])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]
