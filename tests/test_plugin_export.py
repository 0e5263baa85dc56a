"""A generator family from another package (the `ganmix.generators` entry-point group) in a real digits
search (Ray Tune + Optuna + MLflow SQLite), then `ganmix export` of that search's GAN recipe."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from ganmix.datasets import load_dataset
from ganmix.search.allocation import allocate, synthetic_total

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parent / "plugin_example"  # the README's example package
SPEC = {
    "dataset": "digits",
    "trials": 2,  # the fixed real-only baseline, then one trial of the plugin family
    "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
    "max_concurrent": 1,
    "metric": "val_auc",
    "space": {"generator": {"type": "categorical", "choices": ["myfam"]}},
    "generator_space": {"myfam": {"latent_dim": [8]}},
    "fixed": {"classifier_epochs": 1, "classifier_min_steps": 0, "generator_epochs": 2, "synthetic_ratio": 0.5,
              "allocation": "balance"},
}


def fake_distribution(root: Path, *, entry: str = "myfam = myplug") -> Path:
    """The example package as an installed distribution: its module and a dist-info with the entry point."""
    shutil.copytree(EXAMPLE / "myplug", root / "myplug")
    info = root / "myplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ganmix.generators]\n{entry}\n")
    return root


def run(args: list[str], *, cwd: Path, plugin: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH reaches the local Ray workers too: they find the plugin as the driver does.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def ganmix(*args: str, cwd: Path, plugin: Path) -> subprocess.CompletedProcess[str]:
    return run(["-m", "ganmix.search.cli", *args], cwd=cwd, plugin=plugin)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("plugin")
    plugin = fake_distribution(tmp_path_factory.mktemp("site"))
    (root / "space.yaml").write_text(yaml.safe_dump(SPEC))
    done = ganmix("search", "--config", "space.yaml", "--results-dir", "results", "--name", "plug",
                  "--no-sample-metrics", "--quiet", cwd=root, plugin=plugin)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ganmix/digits").experiment_id])
    trials = [r for r in runs if r.data.tags.get("ganmix.kind") == "trial"]
    return {"root": root, "plugin": plugin, "client": client, "trials": trials}


def test_the_registry_finds_a_plugin_family_and_it_round_trips(tmp_path: Path) -> None:
    plugin = fake_distribution(tmp_path / "site")
    code = """
import torch
from ganmix.models.generator import *
from ganmix.search.spec import SearchSpec
assert "myfam" in list_generators(), list_generators()
cfg = make_generator_config("myfam", image_size=8, channels=1, num_classes=3, options={"latent_dim": 4})
model = create_generator("myfam", cfg)
model.train_step(torch.rand(6, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2]))
save_generator(model, "g.pt")
back = load_generator("g.pt")
labels = torch.tensor([0, 1, 2, 2])
assert torch.equal(sample_images(back, labels, seed=5), sample_images(model, labels, seed=5))
print(sorted(SearchSpec.from_mapping({"dataset": "digits", "space": {"generator": {"type": "categorical",
      "choices": ["none", "myfam"]}}}).generator_space["myfam"]))
"""
    done = run(["-c", code], cwd=tmp_path, plugin=plugin)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "['latent_dim']"  # the plugin's own search space, as declared


def test_plugin_family_names_are_read_without_importing_torch(tmp_path: Path) -> None:
    # What a torch-free pre-flight check can ask: the declared names, from the package metadata only.
    plugin = fake_distribution(tmp_path / "site")
    code = ("import sys; from ganmix.models._registry import PLUGIN_GROUP, entry_point_names; "
            "print(entry_point_names(PLUGIN_GROUP), 'torch' in sys.modules, 'myplug' in sys.modules)")
    done = run(["-c", code], cwd=tmp_path, plugin=plugin)
    assert done.stdout.strip() == "['myfam'] False False", done.stderr[-2000:]


def test_a_plugin_that_registers_another_name_is_one_line(tmp_path: Path) -> None:
    plugin = fake_distribution(tmp_path / "site", entry="otherfam = myplug")
    done = run(["-c", "from ganmix.models.generator import list_generators; list_generators()"], cwd=tmp_path,
               plugin=plugin)
    assert done.returncode != 0
    assert "entry point 'otherfam' of group 'ganmix.generators' registered no generator family" in done.stderr


def test_a_search_trains_samples_and_logs_the_plugin_family(searched) -> None:
    gan = [r for r in searched["trials"] if r.data.params.get("generator") == "myfam"]
    assert len(searched["trials"]) == 2 and len(gan) == 1
    trial = gan[0]
    assert trial.info.status == "FINISHED", trial.data.tags.get("ganmix.error")
    assert trial.data.params["generator_options.latent_dim"] == "8"
    assert trial.data.tags.get("ganmix.completed") == "true"
    assert sum(int(v) for k, v in trial.data.params.items() if k.startswith("synthetic_count.")) > 0
    logged = {a.path for a in searched["client"].list_artifacts(trial.info.run_id, "generator")}
    assert "generator/generator.pt" in logged


def test_export_writes_the_augmented_training_set_imagefolder_reads(searched, tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    out = tmp_path / "exported"
    done = ganmix("export", "--results-dir", str(searched["root"] / "results"), "--out", str(out), "--seed", "7",
                  cwd=tmp_path, plugin=searched["plugin"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    trial = next(r for r in searched["trials"] if r.data.params.get("generator") == "myfam")
    text = searched["client"].download_artifacts(trial.info.run_id, "recipe.yaml", str(tmp_path))
    recipe = yaml.safe_load(Path(text).read_text())  # not Recipe: this process has no plugin to validate it
    data = load_dataset("digits")
    counts = data.train.class_counts(data.num_classes)
    synthetic = allocate(synthetic_total(recipe["synthetic_ratio"], len(data.train)), counts, recipe["allocation"])
    assert sum(synthetic) > 0
    folder = ImageFolder(str(out / "train"))
    per_folder = Counter(folder.classes[label] for _, label in folder.samples)
    assert per_folder == {name: real + syn for name, real, syn in zip(data.class_names, counts, synthetic)}
    for split in ("val", "test"):  # untouched real images
        assert len(ImageFolder(str(out / split))) == len(data.splits()[split])
    with open(out / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    syn_rows = [r for r in rows if r["source"] == "synthetic"]
    assert len(syn_rows) == sum(synthetic)
    assert {r["generator_run_id"] for r in syn_rows} == {trial.info.run_id} and {r["seed"] for r in syn_rows} == {"7"}
    assert all(Path(r["file"]).name.startswith("syn_") and (out / r["file"]).is_file() for r in syn_rows)
    assert Counter(r["source"] for r in rows if r["split"] == "train")["real"] == len(data.train)
    image, _ = folder[0]
    assert image.size == (data.image_size, data.image_size)

    npz_out = tmp_path / "as_npz"
    done = ganmix("export", "--results-dir", str(searched["root"] / "results"), "--out", str(npz_out),
                  "--format", "npz", cwd=tmp_path, plugin=searched["plugin"])
    assert done.returncode == 0, done.stderr[-3000:]
    arrays = np.load(npz_out / "export.npz")
    assert len(arrays["train_images"]) == len(data.train) + sum(synthetic)
    is_syn = arrays["train_source"] == "synthetic"
    assert is_syn.sum() == sum(synthetic) and set(arrays["train_generator_run_id"][is_syn]) == {trial.info.run_id}
    # The default seed is the trial's own: the loaded generator gives back the very images the trial trained on.
    logged = np.load(searched["client"].download_artifacts(trial.info.run_id, "samples/synthetic.npz", str(tmp_path)))
    assert np.array_equal(arrays["train_images"][is_syn], logged["images"])
    assert np.array_equal(arrays["train_labels"][is_syn], logged["labels"])


@pytest.mark.parametrize("args, message", [
    (["--name", "nosuch"], "no search named 'nosuch'"),
    (["--arm", "best"], "--arm 'best' is not an arm"),
    (["--arm", "top9"], "--arm top9: the search has 2 completed trial(s)"),
    (["--arm", "real-only"], "a real-only recipe without a generator"),
])
def test_export_bad_input_is_one_line_and_writes_nothing(searched, tmp_path: Path, args, message) -> None:
    out = tmp_path / "out"
    done = ganmix("export", "--results-dir", str(searched["root"] / "results"), "--out", str(out), *args,
                  cwd=tmp_path, plugin=searched["plugin"])
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no staging folder left either


def test_export_refuses_a_non_empty_out(searched, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    done = ganmix("export", "--results-dir", str(searched["root"] / "results"), "--out", str(tmp_path),
                  cwd=tmp_path, plugin=searched["plugin"])
    assert done.returncode == 2 and "is not an empty folder" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
