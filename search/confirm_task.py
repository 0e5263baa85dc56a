"""One (arm, seed) of a confirmation, as a Ray task: its own MLflow run nested under the confirmation run.

A confirmation is stopped through `StopFlag`, never with `ray.cancel`: cancelling a running task races
with its completion in Ray's core worker (a RAY_CHECK crash of the driver, ray-project/ray#54798), and the
KeyboardInterrupt it injects can land inside a SQLite write and keep the store locked. A seed reads the
flag before it starts and after every classifier epoch, and ends its own run there."""

from __future__ import annotations

from typing import Any

from ganmix.datasets import ImageDataset

STOPPED = "stopped before it finished"  # the error a seed's run ends with when the flag was set


class SeedStopped(Exception):
    """Raised inside a seed's classifier loop once its confirmation was told to stop."""


class StopFlag:
    """A confirmation's stop switch; a tiny Ray actor (num_cpus=0), so seeds on any node can read it."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def run_seed(dataset: ImageDataset, recipe_yaml: str, *, uri: str, experiment_id: str, confirmation_run_id: str,
             arm: str, name: str, seed: int, cache_dir: str, cpus: float, stop: Any = None,
             weights: dict[str, bytes] | None = None) -> dict[str, Any] | None:
    """Train `recipe_yaml` (its seeds already set) and return its final val and test metrics; None when the
    confirmation was stopped before this seed started (it then has no run)."""
    import ray

    from ganmix.search.recipe import Recipe
    from ganmix.search.recipe_run import NewRun, run_recipe
    from ganmix.tracking.confirmation import seed_run_tags

    def stopped() -> bool:
        return stop is not None and bool(ray.get(stop.is_set.remote()))

    def check(_logger: Any, _metrics: dict[str, float]) -> None:
        if stopped():
            raise SeedStopped(STOPPED)

    if stopped():
        return None
    if weights:  # the driver's ImageNet weights files: no seed downloads
        from ganmix.models.pretrained import install_weights

        install_weights(weights)
    recipe = Recipe.from_yaml(recipe_yaml, source=f"confirmation arm {arm}")
    run = NewRun(uri, experiment_id, f"{name} seed={seed}", seed_run_tags(arm=arm, seed=seed),
                 parent_run_id=confirmation_run_id)
    # Sample metrics belong to the search; here only the classifier's test metrics are wanted.
    metrics, _ = run_recipe(recipe, dataset, run=run, cache_dir=cache_dir, sample_metrics=False, cpus=cpus,
                            report=check)
    return metrics
