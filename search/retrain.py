"""`ganmix train`: re-run one exported recipe outside Tune and log it as its own MLflow run."""

from __future__ import annotations

from pathlib import Path

from ganmix.search.recipe import Recipe
from ganmix.search.recipe_data import load_recipe_data
from ganmix.search.recipe_run import NewRun, run_recipe
from ganmix.tracking import store
from ganmix.tracking.naming import run_name
from ganmix.tracking.runs import FINGERPRINT, KIND


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
    from ganmix.search.preflight.weights import cache_recipe_weights

    # ImageNet weights into torchvision's cache first (downloaded once; offline and absent: one line, before a
    # store is opened), as a search's driver does for its trials.
    cache_recipe_weights([recipe])
    uri = store.resolve_tracking_uri(tracking_uri, results_dir)
    store.check_reachable(uri)
    dataset = load_recipe_data(recipe, data_dir)
    experiment_id = store.ensure_experiment(uri, recipe.dataset)
    run = NewRun(uri, experiment_id, f"train {run_name(recipe)}", {KIND: "train", FINGERPRINT: dataset.fingerprint})
    metrics, logger = run_recipe(recipe, dataset, run=run, cache_dir=results_dir / "cache",
                                 sample_metrics=sample_metrics, prefer_gpu=prefer_gpu)
    return metrics, logger.run_id, uri
