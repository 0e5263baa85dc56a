"""One (arm, seed) of a confirmation, as a Ray task: its own MLflow run nested under the confirmation run."""

from __future__ import annotations

from typing import Any

from ganmix.datasets import ImageDataset


def run_seed(dataset: ImageDataset, recipe_yaml: str, *, uri: str, experiment_id: str, confirmation_run_id: str,
             arm: str, name: str, seed: int, cache_dir: str, cpus: float) -> dict[str, Any]:
    """Train `recipe_yaml` (its seeds already set) and return its final val and test metrics."""
    import ray
    import torch

    from ganmix.search.pipeline import execute_recipe
    from ganmix.search.recipe import Recipe
    from ganmix.tracking import confirmation as tracking

    torch.set_num_threads(max(1, int(cpus)))
    recipe = Recipe.from_yaml(recipe_yaml, source=f"confirmation arm {arm}")
    logger = tracking.start_seed_run(uri, experiment_id, confirmation_run_id, arm=arm, name=name, seed=seed)
    logger.log_params(recipe.to_params())
    logger.log_text(recipe.to_yaml(), "recipe.yaml")
    device = torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")
    try:
        # Sample metrics belong to the search; here only the classifier's test metrics are wanted.
        metrics = execute_recipe(recipe, dataset, device=device, logger=logger, cache_dir=cache_dir,
                                 sample_metrics=False)
    except BaseException as exc:
        logger.finish("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    tracking.finish_seed_run(logger)
    return metrics
