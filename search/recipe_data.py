"""The data one recipe trains on, loaded without the training stack (torch's models, sklearn): the
pre-flight data check answers through here before anything heavy is imported."""

from __future__ import annotations

from pathlib import Path

from ganmix.datasets import ImageDataset, apply_scarcity, load_dataset
from ganmix.search.recipe import Recipe


def load_recipe_data(recipe: Recipe, data_dir: Path | None, *, download: bool = True) -> ImageDataset:
    """The data a recipe trains on: its data set, with its scarcity drawn by its `data_seed`. A search and
    `ganmix train` both load through here, so a re-run sees the trial's exact train subset. Without
    `download`, a missing MedMNIST file raises MissingDataError (the pre-flight check)."""
    dataset = load_dataset(recipe.dataset, data_dir=data_dir, size=recipe.size, image_size=recipe.image_size,
                           seed=recipe.data_seed, download=download)
    if recipe.train_per_class or recipe.class_fraction:
        dataset = apply_scarcity(dataset, train_per_class=recipe.train_per_class,
                                 class_fraction=dict(recipe.class_fraction) or None, seed=recipe.data_seed)
    return dataset
