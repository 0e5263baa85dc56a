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
    from ganmix.search.recipe import Recipe
    from ganmix.search.spec import SearchSpec


def check_search_data(spec: SearchSpec, data_dir: Path | None) -> ImageDataset | None:
    """The searched data set, read without downloading and judged; None when its file is still to be
    downloaded (then its folder must be creatable). A MedMNIST file or the digits are first read and judged with
    numpy alone (judge_search_data), so bad data is answered before torch is imported; once it passes, the
    loader reads it as tensors for the run."""
    from ganmix.datasets import MissingDataError
    from ganmix.search.recipe_data import check_heldout

    judged = judge_search_data(spec, data_dir)
    try:
        dataset = load_judged_data(spec, data_dir)
    except MissingDataError as exc:
        check_writable_dir(exc.path.parent, f"the data folder of {spec.dataset!r}")
        return None
    if not judged:  # what judge_search_data checks, on the tensors of data only the loader reads
        judge_data(dataset, spec.dataset)
        check_heldout(dataset, searched_families(spec))
    return dataset


def judge_search_data(spec: SearchSpec, data_dir: Path | None) -> bool:
    """Every check of check_search_data on the data read as numpy arrays, without torch: True when it passed
    (load_judged_data then reads the tensors, e.g. while Ray starts); False where only the loader can read the
    data (an image folder) or its MedMNIST file is still to be downloaded."""
    from ganmix.datasets import MissingDataError
    from ganmix.datasets.catalog import known_class_names
    from ganmix.datasets.scarcity_rules import fractions_by_index
    from ganmix.search.recipe_data import check_heldout_light, read_recipe_data_light

    base = spec.base_recipe()
    classes = known_class_names(spec.dataset)
    if classes is not None:  # a class_fraction judged by the data set's class names, before any file is read
        fractions_by_index(classes, spec.dataset, dict(base.class_fraction))
    try:
        light = read_recipe_data_light(base, data_dir)
    except MissingDataError:
        return False
    if light is None:
        return False
    judge_splits(light.splits, light.class_names, spec.dataset)
    check_heldout_light(light, searched_families(spec))
    return True


def load_judged_data(spec: SearchSpec, data_dir: Path | None) -> ImageDataset:
    """The searched data's tensors, never downloaded (a missing file raises MissingDataError): after
    judge_search_data passed, or for check_search_data to judge."""
    from ganmix.search.recipe_data import load_recipe_data

    return load_recipe_data(spec.base_recipe(), data_dir, download=False)


def check_recipe_data(recipe: Recipe, data_dir: Path | None) -> None:
    """`ganmix train`'s data set (its name, folder, classes and scarcity), read without downloading: a wrong
    one is one line before the store is opened. A missing MedMNIST file is downloaded by the run."""
    from ganmix.datasets import MissingDataError
    from ganmix.search.recipe_data import load_recipe_data

    try:
        load_recipe_data(recipe, data_dir, download=False)
    except MissingDataError as exc:
        check_writable_dir(exc.path.parent, f"the data folder of {recipe.dataset!r}")


def check_resumed_data(spec: SearchSpec, data_dir: Path | None, *, search: str,
                       fingerprint: str | None) -> ImageDataset | None:
    """The data a resumed search continues on: from the folder it recorded (or the one given), never
    downloaded into a folder that no longer holds its file; the same data (its fingerprint) as it started on."""
    from ganmix.datasets import MissingDataError
    from ganmix.search.preflight.errors import PreflightError
    from ganmix.search.recipe_data import load_recipe_data

    if data_dir is None:  # the default folder: a file gone from there is downloaded again, as at the start
        dataset = check_search_data(spec, None)
    else:
        try:
            dataset = load_recipe_data(spec.base_recipe(), data_dir, download=False)
        except MissingDataError as exc:
            raise PreflightError(f"--resume {search}: its data folder {data_dir} no longer holds {exc.path.name} "
                                 f"(expected {exc.path}); put the file back there or pass --data-dir FOLDER that "
                                 "holds it") from None
        judge_data(dataset, spec.dataset)
    if dataset is not None and fingerprint and dataset.fingerprint != fingerprint:
        where = f"in {data_dir}" if data_dir is not None else "in the default data folder"
        raise PreflightError(f"--resume {search}: the {spec.dataset} data {where} is not the data the search "
                             f"started on (fingerprint {dataset.fingerprint}, recorded {fingerprint}); pass "
                             "--data-dir FOLDER holding the original file")
    return dataset


def load_search_data(spec: SearchSpec, data_dir: Path | None) -> ImageDataset:
    """The searched data set, scarcity applied, downloading a missing MedMNIST file. Loaded the way every
    recipe of the search loads it (its data_seed), so `ganmix train` sees the same data."""
    from ganmix.search.recipe_data import check_heldout, load_recipe_data

    dataset = load_recipe_data(spec.base_recipe(), data_dir)
    judge_data(dataset, spec.dataset)
    check_heldout(dataset, searched_families(spec))
    return dataset


def searched_families(spec: SearchSpec) -> list[str]:
    """Every generator a trial of the spec may use: the space's choices, or the fixed one."""
    dim = spec.space.get("generator")
    return [str(c) for c in getattr(dim, "choices", ())] if dim is not None else [spec.base_recipe().generator]


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
