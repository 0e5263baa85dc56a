"""On the real BreastMNIST file: the generator trains on the official train split only, and test
metrics come from the official test split."""

from __future__ import annotations

import csv

import numpy as np
import torch
from conftest import require_shared

import ganmix.models.generator_cache as generator_cache
import ganmix.search.pipeline as pipeline
from ganmix.datasets import load_dataset
from ganmix.search.recipe import Recipe
from ganmix.tracking import runs, store


def test_generator_sees_train_only_and_test_metrics_use_official_test(tmp_path, monkeypatch, migrated_store):
    npz_path = require_shared("breastmnist.npz")
    official = np.load(npz_path, allow_pickle=False)
    dataset = load_dataset("breastmnist", data_dir=npz_path.parent, download=False)

    seen: list[torch.Tensor] = []
    real_train_generator = generator_cache.resume_generator  # what the pipeline trains through

    def spy(model, images, labels, **kwargs):  # records what the real trainer is given, then runs it
        seen.append(images.clone())
        return real_train_generator(model, images, labels, **kwargs)

    monkeypatch.setattr(generator_cache, "resume_generator", spy)
    uri = migrated_store
    experiment_id = store.ensure_experiment(uri, "breastmnist")
    logger = runs.start_run(uri, experiment_id, name="hygiene", tags={})
    recipe = Recipe(dataset="breastmnist", generator_epochs=1, generator_options={"latent_dim": 16}, synthetic_ratio=0.5, classifier_epochs=1, classifier_min_steps=0,
                    augment="none")
    metrics = pipeline.execute_recipe(recipe, dataset, device=torch.device("cpu"), logger=logger, sample_metrics=False)
    logger.finish()

    # Exactly the official train images, in order: no val or test image reached the generator.
    assert len(seen) == 1
    generator_images = seen[0][:, 0].numpy()
    assert np.array_equal(generator_images, official["train_images"])
    train_rows = {row.tobytes() for row in generator_images}
    val_overlap = sum(row.tobytes() in train_rows for row in official["val_images"])
    test_overlap = sum(row.tobytes() in train_rows for row in official["test_images"])
    # The official file itself repeats one test image in train; nothing beyond that overlap.
    assert (val_overlap, test_overlap) == (0, 1)

    # Test metrics: the confusion matrix covers the 156 official test images with their true labels.
    client = store.client(uri)
    local = client.download_artifacts(logger.run_id, "confusion_matrix_test.csv", str(tmp_path))
    with open(local, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    per_class = [sum(int(v) for v in row[1:]) for row in rows]
    assert per_class == np.bincount(official["test_labels"][:, 0], minlength=2).tolist()
    assert sum(per_class) == 156
    assert {"test_auc", "test_sensitivity", "test_specificity"} <= set(metrics)
