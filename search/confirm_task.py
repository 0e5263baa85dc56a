"""One (arm, seed) of a confirmation, as a Ray task: its own MLflow run nested under the confirmation run."""

from __future__ import annotations

from typing import Any

from ganmix.datasets import ImageDataset


def run_seed(dataset: ImageDataset, recipe_yaml: str, *, uri: str, experiment_id: str, confirmation_run_id: str,
             arm: str, name: str, seed: int, cache_dir: str, cpus: float) -> dict[str, Any]:
    """Train `recipe_yaml` (its seeds already set) and return its final val and test metrics."""
    from ganmix.search.recipe import Recipe
    from ganmix.search.recipe_run import NewRun, run_recipe
    from ganmix.tracking.confirmation import seed_run_tags

    recipe = Recipe.from_yaml(recipe_yaml, source=f"confirmation arm {arm}")
    run = NewRun(uri, experiment_id, f"{name} seed={seed}", seed_run_tags(arm=arm, seed=seed),
                 parent_run_id=confirmation_run_id)
    # Sample metrics belong to the search; here only the classifier's test metrics are wanted.
    metrics, _ = run_recipe(recipe, dataset, run=run, cache_dir=cache_dir, sample_metrics=False, cpus=cpus)
    return metrics
