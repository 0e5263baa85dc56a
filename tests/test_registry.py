"""`ganmix best --register`: a real tiny digits search (Ray Tune + Optuna + MLflow), its generator registered
in the MLflow Model Registry of a SQLite store and of a real `mlflow server`, loaded back with
`mlflow.pyfunc.load_model("models:/...")` from another folder after the trial's own artifacts are gone."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from ganmix.datasets import load_dataset
from ganmix.search.cli import main
from ganmix.search.recipe import Recipe
from ganmix.tracking import query, runs, store
from ganmix.tracking.confirmation import CONFIRMATION_RUN, CONFIRMED_ARM, VERDICT
from ganmix.tracking.registry import (CHOSEN_AS, RECIPE, TRIAL_RUN, Chosen, RegistryError,
                                      choose_generator_trial, request_labels, sample_registered, version_tags)
from ganmix.tracking.runs import BASELINE, COMPLETED, FINGERPRINT, KIND, METRIC, SEARCH_NAME

from cluster_harness import MlflowServer

pytestmark = pytest.mark.integration

# Two trials: the fixed real-only baseline, then one tiny DCGAN trial.
SPEC = {
    "dataset": "digits", "trials": 2, "max_concurrent": 1, "metric": "val_auc",
    "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
    "space": {"generator": {"type": "categorical", "choices": ["dcgan"]},
              "generator_epochs": {"type": "int", "low": 1, "high": 2},
              "synthetic_ratio": {"type": "float", "low": 0.2, "high": 0.5}},
    "generator_space": {"dcgan": {"width": [4], "latent_dim": [8]}},
    "fixed": {"classifier_epochs": 1, "classifier_min_steps": 0},
}
REQUEST = pd.DataFrame({"label": [0, 3], "count": [2, 1]})


def ganmix(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganmix.search.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def tiny_search(root: Path, *store_flags: str) -> None:
    spec = root / "space.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    done = ganmix("search", "--config", str(spec), "--name", "reg", "--quiet", "--no-sample-metrics",
                  *store_flags, cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def load_elsewhere(uri: str, model_uri: str, cwd: Path) -> str:
    """Load and predict in a fresh process in another folder: nothing of the search's folder is at hand."""
    code = ("import mlflow, pandas as pd; mlflow.set_tracking_uri(%r); m = mlflow.pyfunc.load_model(%r); "
            "out = m.predict(pd.DataFrame({'label': [0, 3], 'count': [2, 1]})); "
            "print(out['label'].tolist(), [x.shape for x in out['image']], out['image'][0].dtype)") % (uri, model_uri)
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("registry")
    tiny_search(root, "--results-dir", str(root / "results"))
    done = ganmix("best", "--results-dir", str(root / "results"), "--register", cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    uri = f"sqlite:///{root / 'results' / 'mlflow.db'}"
    return {"root": root, "uri": uri, "stdout": done.stdout, "client": MlflowClient(tracking_uri=uri)}


def test_register_makes_version_1_of_ganmix_dataset_with_its_recipe_and_data_as_tags(registered):
    assert "as models:/ganmix-digits/1" in registered["stdout"]
    version = registered["client"].get_model_version("ganmix-digits", "1")
    trial = registered["client"].get_run(version.tags[TRIAL_RUN])
    assert trial.data.params["generator"] == "dcgan" and trial.data.tags[KIND] == "trial"
    assert Recipe.from_yaml(version.tags[RECIPE]).generator == "dcgan"
    assert version.tags[FINGERPRINT] == load_dataset("digits").fingerprint
    assert version.tags[CHOSEN_AS] == "best generator trial"  # no confirmation ran
    assert version.tags["ganmix.verdict"].startswith("unconfirmed")


def test_the_registered_model_loads_from_another_folder_without_the_trials_artifacts(registered, tmp_path):
    client, uri = registered["client"], registered["uri"]
    trial_id = client.get_model_version("ganmix-digits", "1").tags[TRIAL_RUN]
    trial_artifacts = Path(client.get_run(trial_id).info.artifact_uri.removeprefix("file://"))
    assert (trial_artifacts / "generator" / "generator.pt").is_file()
    # The model must hold its own copy of the checkpoint: the trial's is moved away while it loads (and put
    # back after, for the confirm test below).
    aside = tmp_path / "aside"
    shutil.move(trial_artifacts / "generator", aside)
    try:
        line = load_elsewhere(uri, "models:/ganmix-digits/1", tmp_path)
    finally:
        shutil.move(aside, trial_artifacts / "generator")
    assert line == "[0, 0, 3] [(1, 8, 8), (1, 8, 8), (1, 8, 8)] uint8"


def test_sample_registered_gives_the_requested_classes_and_is_seeded(registered):
    before = os.environ.get("MLFLOW_TRACKING_URI")
    images, labels = sample_registered("models:/ganmix-digits/1", {1: 2, 9: 3}, seed=5, tracking_uri=registered["uri"])
    assert images.shape == (5, 1, 8, 8) and images.dtype == np.uint8
    assert labels.tolist() == [1, 1, 9, 9, 9]
    assert os.environ.get("MLFLOW_TRACKING_URI") == before  # the caller's MLflow settings are left as they were
    mlflow.set_tracking_uri(registered["uri"])  # or the ambient URI, as a user's script sets it
    try:
        again, _ = sample_registered("models:/ganmix-digits/1", {1: 2, 9: 3}, seed=5)
        other, _ = sample_registered("models:/ganmix-digits/1", {1: 2, 9: 3}, seed=6)
        assert np.array_equal(images, again) and not np.array_equal(images, other)
        empty, none = sample_registered("models:/ganmix-digits/1", {}, seed=0)
        assert empty.shape == (0, 1, 8, 8) and none.shape == (0,)
        with pytest.raises(RegistryError, match="models:/ganmix-digits/7"):
            sample_registered("models:/ganmix-digits/7", {0: 1}, seed=0)
    finally:
        mlflow.set_tracking_uri(before)


def test_export_from_the_registry_writes_the_augmented_training_set(registered, tmp_path):
    """`ganmix export --model models:/NAME/VERSION`: the registered generator (not a search's trial) sampled at
    its recipe's ratio and allocation, beside the real split; ImageFolder reads the counts; a bad URI is one line."""
    from torchvision.datasets import ImageFolder

    from ganmix.search.allocation import allocate, synthetic_total
    from ganmix.search.recipe_data import load_recipe_data

    root = registered["root"]
    out = tmp_path / "aug"
    done = ganmix("export", "--model", "models:/ganmix-digits/1", "--out", str(out), "--results-dir",
                  str(root / "results"), cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    recipe = Recipe.from_yaml(registered["client"].get_model_version("ganmix-digits", "1").tags[RECIPE])
    data = load_recipe_data(recipe, None)
    real = data.train.class_counts(data.num_classes)
    synthetic = allocate(synthetic_total(recipe.synthetic_ratio, len(data.train)), real, recipe.allocation)
    folder = ImageFolder(str(out / "train"))
    counts = [0] * len(folder.classes)
    for _, label in folder.samples:
        counts[label] += 1
    assert sorted(counts) == sorted(r + s for r, s in zip(real, synthetic)) and sum(synthetic) > 0
    assert "synthetic" in (out / "manifest.csv").read_text()
    bad = ganmix("export", "--model", "models:/ganmix-digits/9", "--out", str(tmp_path / "none"), "--results-dir",
                 str(root / "results"), cwd=root)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "none").exists()


def test_a_confirmed_search_registers_its_confirmed_gan_arm(registered):
    uri, client = registered["uri"], registered["client"]
    [result] = query.best_per_dataset(uri, dataset="digits")
    parent = query.find_search(uri, "reg")
    trials = query.trial_summaries(uri, parent.info.experiment_id, parent.info.run_id)
    gan = next(t for t in trials if not query.is_real_only(t))
    # What `ganmix confirm` leaves: its arms table on the confirmation run, the verdict's arm on the search.
    confirmation = runs.start_run(uri, parent.info.experiment_id, name="confirmation", tags={KIND: "confirmation"},
                                  parent_run_id=parent.info.run_id)
    confirmation.log_table({"arm": ["gan", "real-only"], "role": ["GAN arm", "tuned real-only baseline"],
                            "recipe": [gan.name, "baseline"], "trial_run_id": [gan.run_id, "x"]},
                           "confirmation/arms.json")
    confirmation.finish()
    runs.RunLogger(uri, parent.info.run_id).set_tags({CONFIRMATION_RUN: confirmation.run_id, CONFIRMED_ARM: gan.name})
    chosen = choose_generator_trial(uri, result)
    assert chosen.why == "confirmed" and chosen.trial.run_id == gan.run_id
    client.set_tag(parent.info.run_id, CONFIRMED_ARM, "baseline")  # a real-only verdict: the best generator trial
    assert choose_generator_trial(uri, result).why == "best generator trial"


def test_after_a_real_confirm_register_takes_the_confirmed_gan_arm_and_its_verdict(registered):
    root, client = registered["root"], registered["client"]
    done = ganmix("confirm", "--results-dir", str(root / "results"), "--name", "reg", "--top", "1", "--seeds", "2",
                  "--allow-underpowered", "--quiet", cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    done = ganmix("best", "--results-dir", str(root / "results"), "--register", cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "confirmed) as models:/ganmix-digits/2" in done.stdout
    version = client.get_model_version("ganmix-digits", "2")
    parent = query.find_search(registered["uri"], "reg")
    assert version.tags[CHOSEN_AS] == "confirmed"
    assert version.tags[VERDICT] == parent.data.tags[VERDICT][:8000]
    assert client.get_run(version.tags[TRIAL_RUN]).data.params["generator"] == "dcgan"


def test_predict_rejects_a_table_without_label_and_count():
    with pytest.raises(RegistryError, match="'label' and 'count'"):
        request_labels(pd.DataFrame({"class": [1]}), num_classes=10)
    with pytest.raises(RegistryError, match=r"labels must be in \[0, 9\]"):
        request_labels(pd.DataFrame({"label": [10], "count": [1]}), num_classes=10)
    assert request_labels(REQUEST, num_classes=10).tolist() == [0, 0, 3]


def _fake_search(uri: str, trials: list[Recipe]) -> None:
    """A search whose trials logged metrics and recipes but no generator checkpoint."""
    experiment_id = store.ensure_experiment(uri, "digits")
    parent = runs.start_run(uri, experiment_id, name="s", tags={KIND: "search", SEARCH_NAME: "s",
                                                                FINGERPRINT: "fp", METRIC: "val_auc"})
    for i, recipe in enumerate(trials):
        child = runs.start_run(uri, experiment_id, name=f"t{i}", parent_run_id=parent.run_id,
                               tags={KIND: "trial", COMPLETED: "true", BASELINE: str(recipe.baseline).lower()})
        child.log_params(recipe.to_params())
        child.log_text(recipe.to_yaml(), "recipe.yaml")
        child.log_metrics({"val_auc": 0.8 + 0.01 * i})
        child.finish()
    parent.finish()


@pytest.mark.parametrize("trials, expected", [
    ([Recipe(generator="none", synthetic_ratio=0.0, baseline=True)], "has no finished generator trial"),
    ([Recipe(generator="dcgan", synthetic_ratio=0.5)], "has no generator/generator.pt artifact"),
])
def test_nothing_to_register_is_one_line_and_exit_2(tmp_path, capsys, trials, expected):
    uri = store.default_tracking_uri(tmp_path / "results")
    store.check_reachable(uri)
    _fake_search(uri, trials)
    assert main(["best", "--results-dir", str(tmp_path / "results"), "--register"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("ganmix:")]  # not MLflow's own INFO lines
    assert expected in line
    assert main(["best", "--results-dir", str(tmp_path / "results"), "--dataset", "breastmnist", "--register"]) == 2
    assert "no completed trials for breastmnist" in capsys.readouterr().err
    assert MlflowClient(tracking_uri=uri).search_registered_models() == []


def test_no_results_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["best", "--results-dir", str(tmp_path / "nowhere"), "--register", "mine"]) == 2
    assert "no generator to register" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_register_and_load_through_a_real_mlflow_server(tmp_path):
    with MlflowServer(root=tmp_path / "server") as server:
        tiny_search(tmp_path, "--tracking-uri", server.uri, "--results-dir", str(tmp_path / "results"))
        done = ganmix("best", "--tracking-uri", server.uri, "--register", "served-gen", cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "as models:/served-gen/1" in done.stdout
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        assert load_elsewhere(server.uri, "models:/served-gen/1", elsewhere) == \
            "[0, 0, 3] [(1, 8, 8), (1, 8, 8), (1, 8, 8)] uint8"
        tags = MlflowClient(tracking_uri=server.uri).get_model_version("served-gen", "1").tags
        assert Recipe.from_yaml(tags[RECIPE]).generator == "dcgan"


def test_a_model_name_that_breaks_a_models_uri_is_refused_before_any_work(tmp_path, capsys):
    assert main(["best", "--results-dir", str(tmp_path / "nowhere"), "--register", "a/b"]) == 2
    assert "--register: a model name without '/' or ':' is expected, got 'a/b'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's own one line, exit 2
        main(["best", "--register", ""])
    assert "argument --register: must not be empty" in capsys.readouterr().err


def test_version_tags_carry_the_recipe_fingerprint_verdict_and_sample_metrics(tmp_path):
    uri = store.default_tracking_uri(tmp_path / "results")
    store.check_reachable(uri)
    _fake_search(uri, [Recipe(generator="dcgan", synthetic_ratio=0.5)])
    found = query.find_search(uri, "s")
    runs.RunLogger(uri, found.info.run_id).set_tags({VERDICT: "dcgan beats real-only (8 seeds)"})
    parent = query.find_search(uri, "s")
    [trial] = query.trial_summaries(uri, parent.info.experiment_id, parent.info.run_id)
    trial = dataclasses.replace(trial, metrics={**trial.metrics, "fid": 12.5, "near_copy_fraction": 0.01})
    [result] = query.best_per_dataset(uri)
    tags = version_tags(uri, result, Chosen(trial, parent, "confirmed"))
    assert tags["ganmix.sample.fid"] == "12.5" and tags["ganmix.sample.near_copy_fraction"] == "0.01"
    assert "ganmix.sample.kid" not in tags  # only the metrics the trial computed
    assert tags[VERDICT] == "dcgan beats real-only (8 seeds)" and tags[FINGERPRINT] == "fp"
    assert Recipe.from_yaml(tags[RECIPE]) == Recipe(generator="dcgan", synthetic_ratio=0.5)
    assert tags[CHOSEN_AS] == "confirmed" and tags[TRIAL_RUN] == trial.run_id
