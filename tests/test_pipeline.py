"""One recipe through the pipeline on digits (no Ray): filter, sample metrics and exact counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganmix.datasets import load_dataset
from ganmix.search.allocation import allocate, synthetic_total
from ganmix.search.pipeline import execute_recipe
from ganmix.search.recipe import Recipe
from ganmix.tracking import runs, store


@pytest.fixture()
def logger(tmp_path, migrated_store):
    uri = migrated_store
    experiment_id = store.ensure_experiment(uri, "digits")
    run_logger = runs.start_run(uri, experiment_id, name="pipeline", tags={})
    yield run_logger
    run_logger.finish()


def test_confidence_filter_keeps_exact_counts_and_logs_quality(tmp_path, logger, monkeypatch):
    monkeypatch.setenv("GANMIX_CACHE", str(tmp_path / "user-cache"))
    dataset = load_dataset("digits")
    recipe = Recipe(generator="cvae", generator_epochs=2, generator_options={"latent_dim": 16}, synthetic_ratio=0.3, allocation="balance",
                    filter_threshold=0.5, classifier_epochs=1, classifier_min_steps=0, augment="none")
    reported: list[dict[str, float]] = []
    metrics = execute_recipe(recipe, dataset, device=torch.device("cpu"), logger=logger, report=reported.append,
                             cache_dir=tmp_path / "cache")
    expected = allocate(synthetic_total(0.3, len(dataset.train)), dataset.train.class_counts(10), "balance")
    assert metrics["synthetic_count"] == sum(expected)
    assert 0.0 <= metrics["filter_kept_fraction"] <= 1.0
    for key in ("fid", "kid", "precision", "recall", "label_fidelity", "near_copy_fraction"):
        assert np.isfinite(metrics[key]), key
        assert reported[-1][key] == metrics[key]  # sample metrics reach Tune with every report
    assert [r["epoch"] for r in reported] == [1]
    assert not any(k.startswith("test_") for r in reported for k in r)  # the searcher never sees test
    client = store.client(logger.uri)
    names = {a.path for a in client.list_artifacts(logger.run_id, "samples")}
    assert names == {"samples/grid.png", "samples/synthetic.npz", "samples/closest_pairs.png"}
    # The reference classifier: in the user cache by fingerprint and version; its version beside the metrics.
    from ganmix.models.reference import REFERENCE_VERSION, reference_path

    assert reference_path(dataset).is_file() and str(tmp_path / "user-cache") in str(reference_path(dataset))
    assert client.get_run(logger.run_id).data.params["ganmix.reference_version"] == str(REFERENCE_VERSION)


def test_baseline_recipe_trains_no_generator(logger):
    dataset = load_dataset("digits")
    metrics = execute_recipe(Recipe(generator="none", synthetic_ratio=0.0, classifier_epochs=1, classifier_min_steps=0, augment="none"), dataset, device=torch.device("cpu"),
                             logger=logger, sample_metrics=False)
    assert "synthetic_count" not in metrics and 0.0 <= metrics["test_acc"] <= 1.0
    client = store.client(logger.uri)
    assert not client.list_artifacts(logger.run_id, "samples")


class MemorySink:
    """Everything the pipeline hands over, kept in memory: the pipeline needs no MLflow to run."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict]] = []
        self.params: dict = {}
        self.files: dict[str, object] = {}

    def log_params(self, params):
        self.params.update(params)

    def log_metrics(self, metrics, *, step=0):
        self.metrics.append((step, dict(metrics)))

    def log_metric_steps(self, steps):
        self.metrics.extend((step, dict(m)) for step, m, _ in steps)

    def log_text(self, text, artifact_file):
        self.files[artifact_file] = text

    def log_bytes(self, data, artifact_file):
        self.files[artifact_file] = data

    def log_npz(self, artifact_file, **arrays):
        self.files[artifact_file] = arrays

    def log_image(self, image, artifact_file, *, key=None):
        self.files[artifact_file] = image

    def log_table(self, data, artifact_file):
        self.files[artifact_file] = {k: list(v) for k, v in data.items()}

    def log_datasets(self, sets, *, name):
        self.files.update({f"dataset:{name}/{role}": arrays for role, arrays in sets.items()})


def test_pipeline_writes_to_any_sink():
    from ganmix.search.sink import Sink

    sink = MemorySink()
    protocol = {name for name in vars(Sink) if name.startswith("log_")}
    assert protocol <= set(dir(sink)) and protocol <= set(dir(runs.RunLogger))  # MLflow's sink implements it
    recipe = Recipe(generator="dcgan", generator_epochs=1, generator_options={"latent_dim": 16}, synthetic_ratio=0.2, classifier_epochs=2, classifier_min_steps=0,
                    augment="none")
    final = execute_recipe(recipe, load_dataset("digits"), device=torch.device("cpu"), logger=sink,
                           sample_metrics=False)
    epochs = [step for step, m in sink.metrics if "val_auc" in m]
    assert epochs == [1, 2] and final["test_auc"] > 0.5
    assert [step for step, m in sink.metrics if "generator_g_loss" in m] == [1]
    assert {"samples/grid.png", "samples/synthetic.npz", "generator/generator.pt"} <= set(sink.files)
    table = sink.files["per_class.json"]
    assert table["class"] == [str(c) for c in range(10)] and sum(table["synthetic_images"]) == final["synthetic_count"]
    assert table["test_recall"] == [final[f"test_recall_{c}"] for c in range(10)]
