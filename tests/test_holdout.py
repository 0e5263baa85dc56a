"""The `holdout` positive control: refused without held-out images, draws only held-out train images of the
asked classes (never val or test), and runs through the pipeline and the sample logging like a family."""

from __future__ import annotations

import pytest
import torch

from ganmix.datasets import DatasetError, apply_scarcity, load_dataset
from ganmix.models.generator import (
    is_control,
    list_controls,
    list_generators,
    make_generator_config,
    sample_images,
)
from ganmix.models.holdout import Holdout
from ganmix.search.pipeline import execute_recipe
from ganmix.search.recipe import Recipe, RecipeError
from ganmix.search.recipe_data import load_recipe_data
from ganmix.search.spec import SearchSpec, default_space
from ganmix.tracking.naming import run_name
from test_pipeline import MemorySink


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(img.numpy().tobytes()) for img in images}


def test_holdout_is_a_registered_control_never_in_the_default_space():
    assert list_controls() == ["holdout"] and is_control("holdout") and not is_control("dcgan")
    assert "holdout" not in list_generators()
    for gpu in (False, True):
        assert "holdout" not in default_space(gpu=gpu)["generator"].choices
    recipe = Recipe(generator="holdout", train_per_class=20, synthetic_ratio=0.5)
    assert recipe.control and run_name(recipe) == "holdout (control) r=0.5 flip_rotate"


def test_holdout_refused_without_held_out_images(tmp_path):
    with pytest.raises(RecipeError, match=r"^generator: holdout is a positive control .*train_per_class or "
                                          r"class_fraction; this recipe keeps the whole train split$"):
        Recipe(generator="holdout")
    # A search space that names it on a split without scarcity: refused by the spec, before any work.
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("dataset: digits\nspace:\n  generator: [none, holdout]\n")
    from ganmix.search.preflight import check_spec

    with pytest.raises(ValueError, match="generator: holdout is a positive control"):
        check_spec(SearchSpec.load(spec_file))
    # A cap that keeps every image: refused when the data are read (pre-flight's data check).
    with pytest.raises(DatasetError, match=r"generator: holdout .* keep all of them"):
        load_recipe_data(Recipe(generator="holdout", train_per_class=10_000), None)


def test_held_out_pool_is_the_train_images_left_out_never_val_or_test():
    full = load_dataset("digits")
    thin = apply_scarcity(full, train_per_class=15, seed=3)
    held = thin.heldout
    assert held is not None and len(held) + len(thin.train) == len(full.train)
    assert _rows(held.images) | _rows(thin.train.images) == _rows(full.train.images)
    assert not (_rows(held.images) & _rows(thin.train.images))
    assert not (_rows(held.images) & (_rows(full.val.images) | _rows(full.test.images)))
    assert "held out" in thin.description


def test_holdout_draws_asked_classes_seeded_without_replacement_then_cycles():
    thin = apply_scarcity(load_dataset("digits"), train_per_class=100, seed=0)  # classes keep 4..10 held out
    cfg = make_generator_config("holdout", image_size=thin.image_size, channels=thin.channels, num_classes=10)
    model = Holdout.from_pool(cfg, thin.heldout.images, thin.heldout.labels)
    pool = model.pool_counts()
    labels = torch.tensor([2] * 3 + [7] * (2 * pool[7] + 1))
    images = sample_images(model, labels, seed=5)
    assert torch.equal(images, sample_images(model, labels, seed=5))  # seeded
    assert not torch.equal(images, sample_images(model, labels, seed=6))
    index = model.draw(labels, seed=5)
    assert torch.equal(images, thin.heldout.images[index])  # exact held-out images, no conversion loss
    assert (thin.heldout.labels[index] == labels).all()  # only the asked classes
    sevens = index[labels == 7].tolist()
    first = sevens[:pool[7]]
    assert len(set(first)) == pool[7]  # without replacement until the class's pool is used up,
    assert len(set(sevens)) == pool[7] and sevens.count(first[0]) <= 3  # then evenly from fresh permutations
    with pytest.raises(Exception, match="no held-out train image of class"):
        Holdout.from_pool(cfg, thin.heldout.images[:0], thin.heldout.labels[:0]).draw(torch.tensor([1]), seed=0)


def test_holdout_runs_through_the_pipeline_with_sample_logging_and_no_training(tmp_path):
    recipe = Recipe(generator="holdout", train_per_class=10, synthetic_ratio=1.0, classifier_epochs=2,
                    classifier_min_steps=0)
    dataset = load_recipe_data(recipe, None)
    sink = MemorySink()
    final = execute_recipe(recipe, dataset, device=torch.device("cpu"), logger=sink, cache_dir=tmp_path)
    logged = {k: v for _, m in sink.metrics for k, v in m.items()}
    assert logged["generator_epochs_trained"] == 0 and logged["heldout_pool"] == len(dataset.heldout)
    assert not any(k.startswith("generator_g_loss") for k in logged)  # nothing trained
    assert "generator/generator.pt" not in sink.files  # nothing to save: the control has no weights
    assert not (tmp_path / "generators").exists()  # nor anything for the generator cache
    assert final["synthetic_count"] == 100 and "fid" in final and "near_copy_fraction" in final
    samples = sink.files["samples/synthetic.npz"]
    assert _rows(torch.from_numpy(samples["images"])) <= _rows(dataset.heldout.images)
    assert {"samples/grid.png", "samples/closest_pairs.png"} <= set(sink.files)


def test_a_class_with_nothing_held_out_gets_no_control_images():
    # class_fraction alone: the other classes keep every train image, so only class 0 has a pool.
    recipe = Recipe(generator="holdout", class_fraction={"0": 0.3}, synthetic_ratio=0.2, allocation="balance",
                    classifier_epochs=1, classifier_min_steps=0)
    dataset = load_recipe_data(recipe, None)
    sink = MemorySink()
    final = execute_recipe(recipe, dataset, device=torch.device("cpu"), logger=sink, sample_metrics=False)
    counts = [int(sink.params[f"synthetic_count.{c}"]) for c in range(10)]
    assert counts[0] > 0 and sum(counts[1:]) == 0 and final["synthetic_count"] == counts[0]


@pytest.mark.integration
def test_a_real_search_on_a_scarce_digits_split_runs_the_control(tmp_path):
    """`ganmix search` (Ray Tune, Optuna, MLflow) with holdout in the space: its trials run to the end,
    are named and tagged as the control, and mix in held-out train images only."""
    import subprocess
    import sys

    import numpy as np
    import yaml
    from mlflow import MlflowClient

    spec = {"dataset": "digits", "train_per_class": 10, "trials": 3, "max_concurrent": 2, "grace_period": 2,
            "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
            "space": {"generator": ["holdout"], "synthetic_ratio": {"type": "float", "low": 0.5, "high": 2.0}},
            "fixed": {"classifier_epochs": 2, "classifier_min_steps": 0}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", "search", "--config", "spec.yaml",
                           "--results-dir", "results", "--name", "control", "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganmix/digits")
    attempts = [r for r in client.search_runs([experiment.experiment_id])
                if r.data.tags.get("ganmix.kind") == "trial"]
    # Tune reruns a trial whose worker was lost (max_failures): the superseded attempt keeps its own run,
    # closed as not FINISHED. Each trial has exactly one finished run.
    trials = [r for r in attempts if r.info.status == "FINISHED"]
    retried = [(r.info.run_name, r.info.status, r.data.tags.get("ganmix.error")) for r in attempts
               if r.info.status != "FINISHED"]
    assert len({r.data.tags["ganmix.trial_id"] for r in attempts}) == 3, retried
    assert len({r.data.tags["ganmix.trial_id"] for r in trials}) == 3, retried  # one finished run per trial
    controls = [r for r in trials if r.data.tags.get("ganmix.control") == "holdout"]
    assert len(trials) == 3 and len(controls) == 2, retried  # the real-only baseline, then two control trials
    dataset = load_recipe_data(Recipe(generator="holdout", train_per_class=10), None)
    held = _rows(dataset.heldout.images)
    for run in controls:
        assert run.info.run_name.startswith("holdout (control) r=") and run.data.tags["ganmix.completed"] == "true"
        assert run.data.metrics["generator/epochs_trained"] == 0 and "test/auc" in run.data.metrics
        assert "val/decision_threshold" not in run.data.metrics  # ten classes: arg-max, no threshold
        path = client.download_artifacts(run.info.run_id, "samples/synthetic.npz", str(tmp_path))
        with np.load(path, allow_pickle=False) as npz:
            assert _rows(torch.from_numpy(npz["images"])) <= held
