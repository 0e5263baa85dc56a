"""Metric names as MLflow shows them: grouped into sections by the registry, mapped back exactly."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from ganmix.models.metrics import REGISTRY, canonical_metric, internal_name, logged_name
from ganmix.search.spec import SearchSpec
from ganmix.tracking import runs

# Every name the pipeline, the trial and the search log, with the section MLflow groups it under.
EXPECTED = {
    "val_auc": "val/auc", "val_loss": "val/loss", "test_macro_f1": "test/macro_f1",
    "val_recall_benign": "val_recall/benign", "test_recall_malignant": "test_recall/malignant",
    "train_loss": "train/loss", "train_acc": "train/acc", "lr": "train/lr",
    "generator_g_loss": "generator/g_loss", "generator_d_loss": "generator/d_loss", "generator_loss": "generator/loss",
    "generator_epochs_trained": "generator/epochs_trained", "generator_epochs_reused": "generator/epochs_reused",
    "fid": "sample/fid", "near_copy_fraction": "sample/near_copy_fraction", "synthetic_count": "sample/synthetic_count",
    "filter_kept_fraction": "sample/filter_kept_fraction",
    "compute_seconds": "time/compute_seconds", "generator_seconds": "time/generator_seconds",
    "trial_wall_seconds": "time/trial_wall_seconds",
    "best_val_auc": "best/val_auc", "best_epoch": "train/best_epoch", "lift_val_auc": "lift/val_auc",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_logged_metric_has_a_section_and_maps_back(name):
    assert logged_name(name) == EXPECTED[name]
    assert internal_name(logged_name(name)) == name


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registry_metric_is_in_a_section(name):
    shown = logged_name(name)
    assert "/" in shown and internal_name(shown) == name
    assert logged_name(shown) == shown  # a name already logged is left as it is


def test_unknown_names_pass_through():
    assert logged_name("epoch") == "epoch" and internal_name("epoch") == "epoch"


def test_both_spellings_are_accepted_where_users_type_a_metric():
    assert canonical_metric("val/auc") == canonical_metric("val_auc") == "val_auc"
    assert canonical_metric("sample/fid") == "fid"
    assert canonical_metric("val/bogus") == "val/bogus"  # the error then quotes what was typed
    assert SearchSpec(dataset="digits", metric="val/macro_f1").metric == "val_macro_f1"


def test_run_logger_writes_sections_and_reads_them_back(tmp_path, migrated_store):
    uri = migrated_store
    client = MlflowClient(uri)
    experiment = client.create_experiment("names")
    logger = runs.start_run(uri, experiment, name="t", tags={})
    logger.log_metrics({"val_auc": 0.9, "fid": 3.0}, step=1)
    logger.log_metric_steps([(1, {"generator_g_loss": 1.5}, 1000), (2, {"generator_g_loss": 1.2}, 2000)])
    logger.finish()
    run = client.get_run(logger.run_id)
    assert set(run.data.metrics) == {"val/auc", "sample/fid", "generator/g_loss"}
    assert runs.read_metrics(run) == {"val_auc": 0.9, "fid": 3.0, "generator_g_loss": 1.2}
    assert [m.step for m in runs.metric_history(uri, logger.run_id, "generator_g_loss")] == [1, 2]


def test_constraints_take_either_spelling():
    from ganmix.search.constraints import parse_constraints

    assert parse_constraints({"sample/near_copy_fraction": {"max": 0.01}}) == \
        parse_constraints({"near_copy_fraction": {"max": 0.01}})


def test_best_so_far_follows_each_metrics_direction_over_latest_values():
    from ganmix.models.metrics import BestSoFar

    auc = BestSoFar("val_auc")
    assert auc.update("a", 0.8) and auc.update("b", 0.9) and (auc.key, auc.value) == ("b", 0.9)
    assert not auc.update("c", 0.9)  # a tie keeps the first
    assert auc.update("b", 0.7) and (auc.key, auc.value) == ("c", 0.9)  # b's latest value fell: c leads
    assert auc.update("c", 0.5) and (auc.key, auc.value) == ("a", 0.8)
    assert not auc.update("d", float("nan")) and "d" not in auc.latest
    loss = BestSoFar("val_loss")
    loss.update("a", 0.3)
    loss.update("b", 0.2)
    assert (loss.key, loss.value) == ("b", 0.2)
