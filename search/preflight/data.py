"""Pre-flight check of the data set: read, judged, never downloaded.

Decision (issue 17/18): pre-flight creates and downloads nothing. A MedMNIST file that is missing is not an
error here: after every other check has passed, the real run downloads it (load_search_data), and a failed
download is one line naming the file, its URL and where to put it. A data file that cannot be used (a
folder, text, a split that is empty) is one line here; a split that lacks a class, a class with fewer than
two train images, or images that are all the same are warnings: the search can run, but some numbers will
mean little.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ganmix.search.preflight.paths import check_writable_dir

if TYPE_CHECKING:
    from ganmix.datasets import ImageDataset
    from ganmix.search.spec import SearchSpec


def check_search_data(spec: SearchSpec, data_dir: Path | None) -> ImageDataset | None:
    """The searched data set, read without downloading and judged; None when its file is still to be
    downloaded (then its folder must be creatable). A MedMNIST file is first read and judged with numpy
    alone, so a bad one is answered before torch is imported (datasets/light.py); once it passes, the
    loader reads it as tensors for the run."""
    from ganmix.datasets import MissingDataError
    from ganmix.search.recipe_data import load_recipe_data, read_recipe_data_light

    try:
        light = read_recipe_data_light(spec.base_recipe(), data_dir)
        if light is not None:
            judge_splits(light.splits, light.class_names, spec.dataset)
        dataset = load_recipe_data(spec.base_recipe(), data_dir, download=False)
    except MissingDataError as exc:
        check_writable_dir(exc.path.parent, f"the data folder of {spec.dataset!r}")
        return None
    if light is None:
        judge_data(dataset, spec.dataset)
    return dataset


def load_search_data(spec: SearchSpec, data_dir: Path | None) -> ImageDataset:
    """The searched data set, scarcity applied, downloading a missing MedMNIST file. Loaded the way every
    recipe of the search loads it (its data_seed), so `ganmix train` sees the same data."""
    from ganmix.search.recipe_data import load_recipe_data

    dataset = load_recipe_data(spec.base_recipe(), data_dir)
    judge_data(dataset, spec.dataset)
    return dataset


def judge_data(dataset: ImageDataset, name: str) -> None:
    """judge_splits on a loaded data set (its tensors seen as numpy arrays, no copy)."""
    splits = {split: (s.images.numpy(), s.labels.numpy()) for split, s in dataset.splits().items()}
    judge_splits(splits, dataset.class_names, name)


def judge_splits(splits: Mapping[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str], name: str) -> None:
    """An empty split is an error; a split without some class, a near-empty class or constant images warn.
    Splits are (uint8 images, int labels) numpy pairs: no torch needed."""
    from ganmix.datasets import DatasetError

    warnings = []
    for split, (images, labels) in splits.items():
        if len(images) == 0:
            raise DatasetError(f"data set {name!r}: the {split} split is empty; expected at least one image in "
                               "each of train, val and test")
        counts = np.bincount(labels, minlength=len(class_names)).tolist()
        absent = [repr(c) for c, n in zip(class_names, counts) if n == 0]
        if absent:
            warnings.append(f"the {split} split has no image of class(es) {', '.join(absent)}: its AUC and "
                            "per-class recall for them are undefined")
        if int(images.min()) == int(images.max()):  # uint8: no copy
            warnings.append(f"every image of the {split} split is the same (constant pixels): nothing to learn")
    counts = np.bincount(splits["train"][1], minlength=len(class_names)).tolist()
    few = [f"{c!r} ({n})" for c, n in zip(class_names, counts) if 0 < n < 2]
    if few:
        warnings.append(f"class(es) {', '.join(few)} have fewer than 2 train images; their generator and metrics "
                        "will be unreliable")
    for warning in warnings:
        print(f"ganmix: warning: data set {name!r}: {warning}", file=sys.stderr, flush=True)
