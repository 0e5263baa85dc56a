"""The data one recipe trains on, loaded without the training stack (torch's models, sklearn), and its light
twin for the pre-flight data check: the file read and judged with numpy before torch is imported."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ganmix.search.recipe import Recipe

if TYPE_CHECKING:
    from ganmix.datasets import ImageDataset
    from ganmix.datasets.light import LightData


def load_recipe_data(recipe: Recipe, data_dir: Path | None, *, download: bool = True) -> ImageDataset:
    """The data a recipe trains on: its data set, with its scarcity drawn by its `data_seed`. A search and
    `ganmix train` both load through here, so a re-run sees the trial's exact train subset. Without
    `download`, a missing MedMNIST file raises MissingDataError (the pre-flight check)."""
    from ganmix.datasets import apply_scarcity, load_dataset

    dataset = load_dataset(recipe.dataset, data_dir=data_dir, size=recipe.size, image_size=recipe.image_size,
                           seed=recipe.data_seed, download=download)
    if recipe.train_per_class or recipe.class_fraction:
        dataset = apply_scarcity(dataset, train_per_class=recipe.train_per_class,
                                 class_fraction=dict(recipe.class_fraction) or None, seed=recipe.data_seed)
    check_heldout(dataset, [recipe.generator])
    return dataset


def check_heldout(dataset: ImageDataset, families: Iterable[str]) -> None:
    """One line when a control family (`holdout`) is named but the scarcity options left no train image out
    (a cap at or above every class's count): the Recipe refuses the no-scarcity case itself."""
    heldout = len(dataset.heldout) if dataset.heldout is not None else 0
    check_heldout_counts(dataset.name, dataset.class_names, dataset.train.class_counts(dataset.num_classes), heldout,
                         families)


def check_heldout_light(light: LightData, families: Iterable[str]) -> None:
    """check_heldout on the pre-flight's numpy twin of the data."""
    import numpy as np

    counts = np.bincount(light.splits["train"][1], minlength=light.num_classes).tolist()
    check_heldout_counts(light.name, light.class_names, counts, light.heldout, families)


def check_heldout_counts(name: str, class_names: Sequence[str], train_counts: Sequence[int], heldout: int,
                         families: Iterable[str]) -> None:
    if heldout > 0:
        return
    from ganmix.datasets import DatasetError
    from ganmix.models.families import is_control

    controls = [family for family in families if is_control(family)]
    if controls:
        counts = ", ".join(f"{n}={c}" for n, c in zip(class_names, train_counts))
        raise DatasetError(f"generator: {controls[0]} is a positive control that returns held-out train images, but "
                           f"the scarcity options of {name!r} keep all of them (train {counts}); lower "
                           "train_per_class or set a class_fraction below 1")


def read_recipe_data_light(recipe: Recipe, data_dir: Path | None) -> LightData | None:
    """The same data as numpy arrays, checked by the same rules, without torch and never downloaded (a missing
    MedMNIST file raises MissingDataError); None where only the loader can read it (image folders).
    The image size is the Recipe's to judge (it has been), so nothing is resized here."""
    from ganmix.datasets.light import read_light

    return read_light(recipe.dataset, data_dir=data_dir, size=recipe.size, train_per_class=recipe.train_per_class,
                      class_fraction=dict(recipe.class_fraction) or None, seed=recipe.data_seed)
