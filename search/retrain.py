"""`ganmix train`: re-run one exported recipe outside Tune and log it as its own MLflow run."""

from __future__ import annotations

from pathlib import Path

from ganmix.search.pipeline import execute_recipe, load_recipe_data, pick_device
from ganmix.search.recipe import Recipe
from ganmix.tracking import runs, store
from ganmix.tracking.naming import run_name
from ganmix.tracking.runs import COMPLETED, FINGERPRINT, KIND


def retrain(
    recipe: Recipe,
    *,
    results_dir: Path,
    tracking_uri: str | None = None,
    data_dir: Path | None = None,
    prefer_gpu: bool = True,
    sample_metrics: bool = True,
) -> tuple[dict[str, float], str, str]:
    """Returns (final metrics, run id, tracking URI)."""
    uri = store.resolve_tracking_uri(tracking_uri, results_dir)
    store.check_reachable(uri)
    dataset = load_recipe_data(recipe, data_dir)
    experiment_id = store.ensure_experiment(store.client(uri), recipe.dataset, uri)
    logger = runs.start_run(uri, experiment_id, name=f"train {run_name(recipe)}",
                            tags={KIND: "train", FINGERPRINT: dataset.fingerprint})
    logger.log_params(recipe.to_params())
    logger.log_text(recipe.to_yaml(), "recipe.yaml")
    try:
        metrics = execute_recipe(recipe, dataset, device=pick_device(prefer_gpu), logger=logger,
                                 cache_dir=results_dir / "cache", sample_metrics=sample_metrics)
    except BaseException as exc:
        logger.finish("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    logger.set_tags({COMPLETED: "true"})
    logger.finish("FINISHED")
    return metrics, logger.run_id, uri
