"""The real stack end to end: `ganmix search` (Ray Tune + Optuna + MLflow SQLite) on digits, read back
from MLflow, then `ganmix best --export` and `ganmix train` on the exported recipe."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from ganmix.datasets import load_dataset
from ganmix.models.generator import generator_class, list_generators
from ganmix.search.allocation import allocate, synthetic_total
from ganmix.search.recipe import GENERATOR_FIELDS, Recipe
from ganmix.tracking.naming import run_name

pytestmark = pytest.mark.integration

TRIALS = 5
CLASSIFIER_EPOCHS = 3
SPEC = {
    "dataset": "digits",
    "trials": TRIALS,
    "max_concurrent": 2,
    "metric": "val_auc",
    "space": {
        "generator_epochs": {"type": "int", "low": 1, "high": 3},
        "synthetic_ratio": {"type": "float", "low": 0.2, "high": 1.5},
        "generator": {"type": "categorical", "choices": list_generators()},  # every family, GPU ones too
        "allocation": {"type": "categorical", "choices": ["proportional", "balance"]},
    },
    # Each family at its declared tiny options (one choice each), so any family trains in seconds.
    "generator_space": {name: {option: [value] for option, value in generator_class(name).tiny_options.items()}
                        for name in list_generators()},
    "fixed": {"classifier_epochs": CLASSIFIER_EPOCHS, "classifier_min_steps": 0, "augment": "none"},
    # A sample metric as a constraint: TPE and `ganmix best` then prefer trials that satisfy it.
    "constraints": {"near_copy_fraction": {"max": 0.5}},
    # The finalists stage at its smallest: the best real-only and the best generator recipe, 2 more seeds each.
    "finalists": {"count": 1, "seeds": 2},
}


def ganmix(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganmix.search.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("search")
    spec = root / "space.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    done = ganmix("search", "--config", str(spec), "--results-dir", str(root / "results"), "--name", "itest",
                  "--quiet", cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganmix/digits")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("ganmix.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("ganmix.kind") == "trial"]
    return {"root": root, "client": client, "parents": parents, "children": children, "stdout": done.stdout}


def test_one_parent_and_one_nested_child_per_trial(searched):
    assert len(searched["parents"]) == 1
    parent = searched["parents"][0]
    assert parent.info.status == "FINISHED" and parent.data.tags["ganmix.search"] == "itest"
    assert parent.data.params["dataset_fingerprint"] == load_dataset("digits").fingerprint
    children = searched["children"]
    assert len(children) == TRIALS
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert len({c.data.tags["ganmix.trial_id"] for c in children}) == TRIALS
    assert all(c.info.status == "FINISHED" for c in children)
    artifacts = {a.path for a in searched["client"].list_artifacts(parent.info.run_id)}
    assert {"search_spec.yaml", "trials.csv", "best_recipe.yaml"} <= artifacts


def test_every_trial_logs_all_recipe_params_and_per_epoch_metrics(searched):
    client = searched["client"]
    for run in searched["children"]:
        recipe = Recipe.from_yaml(_artifact_text(client, run.info.run_id, "recipe.yaml"))
        fields = set(recipe.to_params())  # a real-only recipe logs no generator fields
        assert fields <= set(run.data.params), sorted(fields - set(run.data.params))
        real_only = run.data.params["generator"] == "none"
        assert not (real_only and set(GENERATOR_FIELDS) & set(run.data.params))
        assert {i.dataset.name for i in run.inputs.dataset_inputs} == \
            {"digits/train", "digits/val", "digits/test"} | (set() if real_only else {"digits/synthetic"})
        history = client.get_metric_history(run.info.run_id, "val/auc")  # MLflow's "val" section
        assert [m.step for m in history] == list(range(1, len(history) + 1))
        assert len(client.get_metric_history(run.info.run_id, "train/loss")) == len(history)
        if run.data.tags.get("ganmix.completed") == "true":
            assert len(history) == CLASSIFIER_EPOCHS
            assert {"test/auc", "test/acc", "test/balanced_acc", "test/macro_f1"} <= set(run.data.metrics)
            table = json.loads(_artifact_text(client, run.info.run_id, "per_class.json"))
            assert table["columns"][:3] == ["class", "train_images", "synthetic_images"] and len(table["data"]) == 10
            assert {f"val_recall/{c}" for c in range(10)} <= set(run.data.metrics)
        else:  # stopped by ASHA at a rung
            assert run.data.tags.get("ganmix.early_stopped") == "true" and len(history) >= 1
        if not recipe.baseline:
            losses = [k for k in run.data.metrics if k.startswith("generator/") and "epochs_" not in k]
            assert losses and all(len(client.get_metric_history(run.info.run_id, k)) == recipe.generator_epochs
                                  for k in losses)


def test_sample_sets_have_exactly_the_counts_the_recipe_asked_for(searched):
    client = searched["client"]
    train = load_dataset("digits").train
    counts = train.class_counts(10)
    for run in searched["children"]:
        recipe = Recipe.from_yaml(_artifact_text(client, run.info.run_id, "recipe.yaml"))
        if recipe.baseline:
            continue
        expected = allocate(synthetic_total(recipe.synthetic_ratio, len(train)), counts, recipe.allocation)
        with np.load(io.BytesIO(_artifact_bytes(client, run.info.run_id, "samples/synthetic.npz")),
                     allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
        assert images.dtype == np.uint8 and images.shape[1:] == (1, 8, 8)
        assert len(images) == sum(expected) == int(run.data.metrics["sample/synthetic_count"])
        assert np.bincount(labels, minlength=10).tolist() == expected
        assert [int(run.data.params[f"synthetic_count.{c}"]) for c in range(10)] == expected
        names = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
        assert {"samples/grid.png", "samples/closest_pairs.png"} <= names
        assert {f"sample/{m}" for m in ("fid", "kid", "precision", "recall", "label_fidelity", "near_copy_fraction")} \
            <= set(run.data.metrics)
        feasible = run.data.metrics["sample/near_copy_fraction"] <= 0.5
        assert run.data.tags["ganmix.feasible"] == str(feasible).lower()


def test_baseline_trial_is_part_of_the_search(searched):
    baselines = [r for r in searched["children"] if r.data.tags.get("ganmix.baseline") == "true"]
    assert len(baselines) == 1 and baselines[0].info.run_name == "baseline"
    assert baselines[0].data.params["generator"] == "none" and baselines[0].data.params["synthetic_ratio"] == "0.0"
    assert float(baselines[0].data.params["classifier_lr"]) == Recipe().classifier_lr


def test_best_picks_the_top_trial_and_train_reruns_its_export(searched):
    root, client = searched["root"], searched["client"]
    completed = [r for r in searched["children"] if r.data.tags.get("ganmix.completed") == "true"]
    top = max(completed, key=lambda r: r.data.metrics["val/auc"])
    export = root / "best.yaml"
    done = ganmix("best", "--results-dir", str(root / "results"), "--export", str(export), cwd=root)
    assert done.returncode == 0, done.stderr
    assert top.info.run_id in done.stdout
    assert "lift over the tuned real-only baseline" in done.stdout or "the best trial is real-only" in done.stdout
    assert "unconfirmed: one seed, chosen on validation" in done.stdout
    exported = Recipe.load(export)
    assert exported == Recipe.from_yaml(_artifact_text(client, top.info.run_id, "recipe.yaml"))

    rerun = ganmix("train", "--recipe", str(export), "--results-dir", str(root / "results"),
                   "--no-sample-metrics", cwd=root)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trains = client.search_runs([top.info.experiment_id], "tags.`ganmix.kind` = 'train'")
    assert len(trains) == 1 and trains[0].info.status == "FINISHED"
    assert trains[0].info.run_id in rerun.stdout
    assert {"test/auc", "val/auc"} <= set(trains[0].data.metrics)
    assert trains[0].data.params == {**trains[0].data.params, **exported.to_params()}


def test_confirm_reruns_the_arms_over_seeds_and_records_a_verdict(searched):
    root, client = searched["root"], searched["client"]
    done = ganmix("confirm", "--name", "itest", "--top", "1", "--seeds", "2", "--allow-underpowered",
                  "--results-dir", str(root / "results"), "--quiet", cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "verdict: " in done.stdout and "tuned real-only baseline" in done.stdout
    # Said before it started: the comparisons, and that 2 seeds cannot reach significance (run anyway).
    plan = next(line for line in done.stdout.splitlines() if line.startswith("confirm: "))
    assert "compared with the tuned real-only baseline" in plan and "running anyway (--allow-underpowered)" in plan
    assert done.stdout.index(plan) < done.stdout.index("verdict: ")
    assert "no lift is detectable with 2 seeds" in done.stdout
    parent = searched["parents"][0]
    experiment = parent.info.experiment_id
    confirmations = client.search_runs([experiment], "tags.`ganmix.kind` = 'confirmation'")
    assert len(confirmations) == 1
    conf = confirmations[0]
    assert conf.info.status == "FINISHED" and conf.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert conf.data.tags["mlflow.note.content"].startswith("**augmentation")
    artifacts = {a.path for a in client.list_artifacts(conf.info.run_id, "confirmation")}
    assert {"confirmation/per_seed.json", "confirmation/arms.json", "confirmation/per_seed.png"} <= artifacts
    seeds = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{conf.info.run_id}'")
    arms = {r.data.tags["ganmix.arm"] for r in seeds}
    assert any(a.endswith("real-only") for a in arms) and len(seeds) == 2 * len(arms)
    assert all(r.info.status == "FINISHED" and "test/auc" in r.data.metrics for r in seeds)
    # Every GAN arm has its ablation: the same recipe with generator none, paired by seed.
    table = json.loads(_artifact_text(client, conf.info.run_id, "confirmation/arms.json"))
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    # The candidates come from the finalists' ranking: top1 is the best finalist, valued by its mean.
    finalist_means = {r.info.run_id: r.data.metrics["finalist/val_auc_mean"] for r in searched["children"]
                      if "finalist/val_auc_mean" in r.data.metrics}
    top1 = next(row for row in rows if row["arm"].startswith("top1"))
    assert top1["trial_run_id"] == max(finalist_means, key=finalist_means.get)
    assert top1["search_val"] == pytest.approx(max(finalist_means.values()))
    assert all(row["vs_real_only_detectable"] is None for row in rows)  # 2 seeds: nothing detectable
    recipes = {r.data.tags["ganmix.arm"]: Recipe.from_yaml(_artifact_text(client, r.info.run_id, "recipe.yaml"))
               for r in seeds}
    gan_rows = [row for row in rows if not recipes[row["arm"]].real_only]
    for row in gan_rows:
        twin = recipes[row["ablation_arm"]]
        assert twin.real_only and twin.to_params().items() >= {
            k: v for k, v in recipes[row["arm"]].ablated().to_params().items() if k != "classifier_seed"}.items()
        assert row["generator_effect_p_holm"] is not None or row["generator_effect"] is None
    assert all(row["vs_real_only"] is None for row in rows if row["role"].startswith(("ablation", "tuned")))
    assert "its generator's own effect" in conf.data.tags["ganmix.verdict"] or not gan_rows
    # Paired seeds: the same classifier seed in every arm, two different seeds per arm.
    by_seed = {}
    for run in seeds:
        by_seed.setdefault(run.data.tags["ganmix.seed"], set()).add(run.data.params["classifier_seed"])
    assert len(by_seed) == 2 and all(len(v) == 1 for v in by_seed.values())
    assert client.get_run(parent.info.run_id).data.tags["ganmix.verdict"] == conf.data.tags["ganmix.verdict"]
    # The search's own run leads with the confirmed answer: metrics and tags on its row, the description.
    searched_run = client.get_run(parent.info.run_id)
    assert {"test/auc", "lift/test_auc"} <= set(searched_run.data.metrics)
    assert searched_run.data.tags["mlflow.note.content"].startswith("**Confirmed over 2 seeds on the test split: ")
    assert "One-seed ranking" in searched_run.data.tags["mlflow.note.content"]
    best = ganmix("best", "--results-dir", str(root / "results"), cwd=root)
    assert "confirmed: " + conf.data.tags["ganmix.verdict"] in best.stdout
    assert "confirmed answer: " + searched_run.data.tags["ganmix.confirmed"] in best.stdout


def test_finalists_are_rerun_over_more_seeds_and_ranked_on_their_mean(searched):
    """After the trials: the best real-only and the best generator recipe re-run over 2 more seeds on
    validation, each run nested under its trial; the mean on the trial's run, the ranking on the parent's."""
    client, parent = searched["client"], searched["parents"][0]
    experiment = parent.info.experiment_id
    reruns = client.search_runs([experiment], "tags.`ganmix.kind` = 'finalist_seed'", max_results=1000)
    by_trial: dict[str, list] = {}
    for run in reruns:
        assert run.data.tags["mlflow.parentRunId"] == run.data.tags["ganmix.finalist_of"]  # nested under its trial
        by_trial.setdefault(run.data.tags["ganmix.finalist_of"], []).append(run)
    trials = {c.info.run_id: c for c in searched["children"]}
    assert set(by_trial) <= set(trials) and len(by_trial) == 2
    kinds = {trials[t].data.params["generator"] == "none" for t in by_trial}
    assert kinds == {True, False}  # one finalist per arm kind
    means = {}
    for trial_id, seeds in by_trial.items():
        assert sorted(int(r.data.tags["ganmix.seed"]) for r in seeds) == [1000, 1001]  # spec seed 0 + 1000 + i
        assert all(r.info.status == "FINISHED" for r in seeds)
        recipes = [Recipe.from_yaml(_artifact_text(client, r.info.run_id, "recipe.yaml")) for r in seeds]
        trial_recipe = Recipe.from_yaml(_artifact_text(client, trial_id, "recipe.yaml"))
        assert all(r.replace(generator_seed=0, classifier_seed=0) == trial_recipe.replace(baseline=False)
                   for r in recipes)  # the trial's recipe, other seeds only
        trial = client.get_run(trial_id)
        means[trial_id] = trial.data.metrics["finalist/val_auc_mean"]
        assert 0 <= means[trial_id] <= 1 and trial.data.metrics["finalist/seeds"] == 2
    ranks = {t: int(client.get_run(t).data.tags["ganmix.finalist_rank"]) for t in by_trial}
    assert sorted(by_trial, key=ranks.get) == sorted(by_trial, key=means.get, reverse=True)
    table = json.loads(_artifact_text(client, parent.info.run_id, "finalists.json"))
    assert table["columns"][:3] == ["rank", "trial", "run_id"] and len(table["data"]) == 2


def test_confirm_with_too_few_seeds_refuses_before_anything_runs(searched):
    """Too few seeds: one line naming the minimum, exit 2, within seconds, and no run left behind."""
    import time

    root, client = searched["root"], searched["client"]
    experiment = searched["parents"][0].info.experiment_id
    before = {r.info.run_id for r in client.search_runs([experiment], max_results=1000)}
    started = time.monotonic()
    done = ganmix("confirm", "--name", "itest", "--seeds", "3", "--results-dir", str(root / "results"), cwd=root)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganmix: error: 3 seeds cannot reach p < 0.05 "), done.stderr
    assert "use --seeds 6 or more" in lines[0] and "--allow-underpowered" in lines[0]  # one comparison: 2/2**6
    assert "confirming" not in done.stdout and took < 120, took
    assert {r.info.run_id for r in client.search_runs([experiment], max_results=1000)} == before
    resample = ganmix("confirm", "--name", "itest", "--resample-data", "--results-dir", str(root / "results"), cwd=root)
    assert resample.returncode == 2 and resample.stderr.strip().splitlines() == [
        "ganmix: error: --resample-data: search 'itest' kept every train image (no --train-per-class or "
        "--class-fraction), so there is no subsample to draw anew; drop --resample-data"]


def _artifact_bytes(client: MlflowClient, run_id: str, path: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()


def _artifact_text(client: MlflowClient, run_id: str, path: str) -> str:
    return _artifact_bytes(client, run_id, path).decode()


def test_the_ui_answers_at_a_glance(searched):
    """Readable names, a rank on every trial, one winner, and the parent's description naming it."""
    client, parent = searched["client"], searched["parents"][0]
    for run in searched["children"]:
        recipe = Recipe.from_yaml(_artifact_text(client, run.info.run_id, "recipe.yaml"))
        assert run.info.run_name == run_name(recipe)
        assert run.data.tags["ganmix.rank"]
    winners = [r for r in searched["children"] if r.data.tags.get("ganmix.best") == "true"]
    assert len(winners) == 1 and winners[0].data.tags["ganmix.rank"] == "1"
    assert winners[0].info.run_id == parent.data.tags["ganmix.best_run_id"]
    note = parent.data.tags["mlflow.note.content"]
    assert f"`{winners[0].info.run_name}` wins" in note.splitlines()[0]
    assert f"(#/experiments/{parent.info.experiment_id}/runs/{winners[0].info.run_id}?workflowType=" in note
    assert all("lift/val_auc" in r.data.metrics for r in searched["children"] if "val/auc" in r.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials_table.json", "optuna"} <= artifacts
    assert {i.dataset.name for i in parent.inputs.dataset_inputs} == {"digits/train", "digits/val", "digits/test"}


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl_c", "ctrl_c_twice"])
def test_ctrl_c_stops_a_confirmation_and_leaves_no_run_running(searched, presses):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) once seeds are running: exit code 130
    within a minute, the finished seeds kept, every other run of the confirmation ended, none RUNNING. Once:
    the running seeds stop at their next epoch (FAILED, SeedStopped); twice: Ray is shut down at once and
    the open runs are closed (KILLED)."""
    import os
    import signal
    import threading
    import time

    root, client = searched["root"], searched["client"]
    experiment = searched["parents"][0].info.experiment_id
    query = "tags.`ganmix.kind` = 'confirmation'"
    before = {r.info.run_id for r in client.search_runs([experiment], query)}
    proc = subprocess.Popen([sys.executable, "-m", "ganmix.search.cli", "confirm", "--name", "itest", "--top", "1",
                             "--seeds", "6", "--allow-underpowered", "--results-dir", str(root / "results")], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 400
    while not any("runs done" in line for line in lines) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "".join(lines)[-3000:]
    for press in range(presses):
        if press:
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("confirm still running 60 s after Ctrl-C:\n" + "".join(lines)[-3000:]) from None
    reader.join(timeout=10)
    text = "".join(lines)
    assert rc == 130 and "ganmix: interrupted" in text and "Check failed" not in text, text[-3000:]
    interrupted = [r for r in client.search_runs([experiment], query) if r.info.run_id not in before]
    assert len(interrupted) == 1 and interrupted[0].info.status == "FAILED"
    seeds = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{interrupted[0].info.run_id}'")
    assert seeds and all(r.info.status in ("FINISHED", "FAILED", "KILLED") for r in seeds)
    assert any(r.info.status == "FINISHED" for r in seeds)
    ended = [r for r in seeds if r.info.status != "FINISHED"]
    assert all("stopped" in r.data.tags.get("ganmix.error", "") for r in ended), [r.data.tags for r in ended]


def test_confirming_an_unknown_search_is_one_line_and_imports_nothing_heavy(searched):
    """A mistyped name on a real store: one line, before confirm's own module (torch, Ray, scipy) loads."""
    root = searched["root"]
    code = ("import sys\nfrom ganmix.search.cli import main\n"
            f"rc = main(['confirm', '--name', 'nope', '--results-dir', {str(root / 'results')!r}])\n"
            "print(rc, sorted(m for m in ('ray', 'torch', 'ganmix.search.confirm') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "2 []", done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"ganmix: error: no search named 'nope' at sqlite:///{root / 'results' / 'mlflow.db'}"]
