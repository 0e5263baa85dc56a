"""`ganmix best` over a real MLflow store: each metric ranks in its own direction, lifts are signed by it and
measured against the tuned real-only baseline, data versions are never pooled; `train` sees the trial's data."""

from __future__ import annotations

import pytest
import torch

from ganmix.search.cli import main
from ganmix.search.recipe import Recipe
from ganmix.search.recipe_data import load_recipe_data
from ganmix.search.runner import load_search_data
from ganmix.search.spec import SearchSpec
from ganmix.tracking import query, runs, store
from ganmix.tracking.runs import BASELINE, COMPLETED, FINGERPRINT, KIND, METRIC, SEARCH_NAME


def _search(uri: str, experiment_id: str, name: str, fingerprint: str, metric: str,
            trials: list[tuple[Recipe, dict[str, float]]]) -> None:
    parent = runs.start_run(uri, experiment_id, name=name, tags={KIND: "search", SEARCH_NAME: name,
                                                                FINGERPRINT: fingerprint, METRIC: metric})
    parent.log_params({"train_size": 100})
    for i, (recipe, metrics) in enumerate(trials):
        child = runs.start_run(uri, experiment_id, name=f"t{i}", parent_run_id=parent.run_id,
                               tags={KIND: "trial", COMPLETED: "true", BASELINE: str(recipe.baseline).lower()})
        child.log_params(recipe.to_params())
        child.log_text(recipe.to_yaml(), "recipe.yaml")
        child.log_metrics(metrics)
        child.finish()
    parent.finish()


@pytest.fixture()
def store_uri(tmp_path, migrated_store):
    uri = migrated_store
    experiment_id = store.ensure_experiment(uri, "digits")
    real = Recipe(generator="none", synthetic_ratio=0.0, classifier_lr=3e-4)
    _search(uri, experiment_id, "a", "fp-full", "val_auc", [
        (real.replace(baseline=True), {"val_auc": 0.80, "val_loss": 0.50, "fid": 0.0, "test_auc": 0.79}),
        (real.replace(augment="flip"), {"val_auc": 0.85, "val_loss": 0.45, "test_auc": 0.84}),
        (Recipe(generator="acgan", synthetic_ratio=1.5), {"val_auc": 0.90, "val_loss": 0.30, "fid": 40.0,
                                                          "test_auc": 0.86}),
        (Recipe(generator="cvae", synthetic_ratio=0.5), {"val_auc": 0.88, "val_loss": 0.40, "fid": 12.0,
                                                         "test_auc": 0.85}),
    ])
    # Another version of the data (scarcer train split: another fingerprint) must not be pooled with it.
    _search(uri, experiment_id, "b", "fp-scarce", "val_auc", [
        (real.replace(baseline=True), {"val_auc": 0.70, "val_loss": 0.60}),
        (Recipe(generator="dcgan"), {"val_auc": 0.99, "val_loss": 0.20}),
    ])
    return uri


def test_best_groups_by_data_version_and_lifts_over_the_tuned_real_only_baseline(store_uri):
    results = {r.data.split("fingerprint ")[1]: r for r in query.best_per_dataset(store_uri)}
    assert set(results) == {"fp-full", "fp-scarce"}
    full = results["fp-full"]
    assert full.best.params["generator"] == "acgan" and full.search == "a"
    assert full.baseline.params["augment"] == "flip"  # the best real-only trial, not the fixed baseline
    assert full.lift("val_auc") == pytest.approx(0.05) and full.lift("test_auc") == pytest.approx(0.02)
    assert full.lift("val_loss") == pytest.approx(0.15)  # lower is better: a positive lift


def test_best_metric_ranks_in_its_own_direction(store_uri):
    results = query.best_per_dataset(store_uri, metric="fid")
    assert [r.best.metrics["fid"] for r in results] == [0.0]  # the lowest FID wins (here: a real-only trial)
    by_loss = query.best_per_dataset(store_uri, metric="val_loss")
    assert sorted(r.best.metrics["val_loss"] for r in by_loss) == [0.20, 0.30]


def test_best_cli_labels_unconfirmed_numbers(store_uri, capsys, tmp_path):
    assert main(["best", "--tracking-uri", store_uri, "--metric", "val_loss"]) == 0
    out = capsys.readouterr().out
    assert "lift over the tuned real-only baseline (val_loss): +0.150" in out  # models/numbers.py
    assert "lower is better" in out and "unconfirmed: one seed, chosen on validation" in out


def test_train_sees_the_exact_train_subset_of_a_scarce_search():
    spec = SearchSpec(dataset="digits", seed=3, train_per_class=20, class_fraction={"1": 0.5})
    searched = load_search_data(spec, None)
    recipe = Recipe.from_yaml(spec.base_recipe().to_yaml())  # what a trial logs and `best --export` writes
    assert recipe.data_seed == 3
    rerun = load_recipe_data(recipe, None)
    assert rerun.fingerprint == searched.fingerprint
    assert torch.equal(rerun.train.images, searched.train.images)
    other = load_recipe_data(recipe.replace(data_seed=4), None)
    assert other.fingerprint != searched.fingerprint
