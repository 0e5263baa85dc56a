"""A search on a multi-node Ray cluster that logs only over HTTP to a real MLflow server.

The driver is a `ganmix search` subprocess joining a 0-CPU head + two 1-CPU worker raylets,
so every trial runs on a worker node and logs from there, as on the AWS cluster.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from cluster_harness import (
    MlflowServer,
    free_port,
    head_node_id,
    run_search_cli,
    search_runs,
    stack,  # noqa: F401 - a module-scoped pytest fixture
    tune_summary,
    worker_node_ids,
    write_search_spec,
)
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

pytestmark = pytest.mark.cluster

CLASSIFIER_EPOCHS = 3
TRIALS = 4


def _tune_trials(experiment_dir: Path) -> dict[str, object]:
    """Tune's own record of the search: trial id -> Trial (config, last result, status)."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(experiment_dir))
    return {trial.trial_id: trial for trial in analysis.trials}


def test_search_on_worker_nodes_logs_everything_over_http(stack: tuple[MlflowServer, Cluster], tmp_path: Path) -> None:
    from ganmix.search.trainable import recipe_from_config

    server, cluster = stack
    results = tmp_path / "results"
    spec = write_search_spec(tmp_path / "spec.yaml", trials=TRIALS)
    code, output = run_search_cli(
        ["--config", str(spec), "--name", "multinode", "--address", cluster.address, "--tracking-uri", server.uri,
         "--results-dir", str(results), "--no-sample-metrics"],
        log_path=tmp_path / "search.log",
    )
    assert code == 0, output[-3000:]
    assert tune_summary(output) == (TRIALS, 0)

    parent, children = search_runs(server.uri, "multinode")
    assert parent.info.status == "FINISHED"
    assert len(children) == TRIALS, [(c.info.run_name, c.info.status) for c in children]
    # Nothing went to a local store: every run, metric and artifact travelled over HTTP.
    assert not list(results.rglob("mlflow.db")) and not list(results.rglob("mlartifacts"))
    assert not list(results.rglob("mlruns"))

    tune_trials = _tune_trials(results / "ray" / "multinode")
    assert len(tune_trials) == TRIALS
    client = MlflowClient(tracking_uri=server.uri)
    head, workers = head_node_id(cluster), worker_node_ids(cluster)
    by_trial = {c.data.tags["ganmix.trial_id"]: c for c in children}
    assert set(by_trial) == set(tune_trials), "one MLflow child run per Tune trial"
    assert sum(c.data.tags["ganmix.baseline"] == "true" for c in children) == 1

    for trial_id, run in by_trial.items():
        trial = tune_trials[trial_id]
        tags, params = run.data.tags, run.data.params
        assert run.info.status == "FINISHED", (trial_id, run.info.status, tags.get("ganmix.error"))
        # Trials ran on worker raylets (the head has no CPU), and say which.
        assert tags["ganmix.node"] in workers and tags["ganmix.node"] != head
        # Params: the whole recipe Tune handed the trial, plus the per-class synthetic counts.
        recipe_params = recipe_from_config(trial.config).to_params()
        assert {k: v for k, v in params.items() if not k.startswith("synthetic_count.")} == recipe_params
        counts = {k.split(".", 1)[1]: int(v) for k, v in params.items() if k.startswith("synthetic_count.")}
        assert len(counts) == 10
        # Per-epoch metrics: one value per epoch Tune saw (fewer when ASHA stopped the trial early).
        epochs = int(trial.last_result["training_iteration"])
        for key in ("val/auc", "val/loss", "val/acc", "val/macro_f1"):
            history = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in history] == list(range(1, epochs + 1)), (trial_id, key)
        if tags.get("ganmix.completed") == "true":
            assert epochs == CLASSIFIER_EPOCHS
            assert "test/auc" in run.data.metrics
        else:
            assert tags.get("ganmix.early_stopped") == "true" and epochs < CLASSIFIER_EPOCHS
        # The sample set: exactly the per-class counts the trial logged.
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
        if sum(counts.values()) == 0:
            assert tags["ganmix.baseline"] == "true" and "samples/synthetic.npz" not in artifacts
            continue
        local = client.download_artifacts(run.info.run_id, "samples/synthetic.npz", str(tmp_path / trial_id))
        with np.load(local) as npz:
            images, labels = npz["images"], npz["labels"]
        assert len(images) == len(labels) == sum(counts.values())
        assert np.bincount(labels, minlength=10).tolist() == [counts[str(c)] for c in range(10)]
    # The artifacts are in the server's own folder (proxied), not on the workers.
    assert list(server.artifacts_dir.rglob("synthetic.npz"))


def test_unreachable_tracking_server_fails_before_any_training(stack: tuple[MlflowServer, Cluster],
                                                               tmp_path: Path) -> None:
    _, cluster = stack
    uri = f"http://127.0.0.1:{free_port()}"
    results = tmp_path / "results"
    started = time.monotonic()
    code, output = run_search_cli(
        ["--config", str(write_search_spec(tmp_path / "spec.yaml")), "--name", "nowhere",
         "--address", cluster.address, "--tracking-uri", uri, "--results-dir", str(results), "--no-sample-metrics"],
        log_path=tmp_path / "search.log", timeout_s=120,
    )
    elapsed = time.monotonic() - started
    assert code != 0
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("ganmix: error:")]
    assert len(errors) == 1 and uri in errors[0], output
    assert elapsed < 60, f"took {elapsed:.0f} s to give up"
    # No Tune experiment, no trial: nothing was written where Tune would have put it.
    assert not (results / "ray").exists()
    assert "trials:" not in output and "Configuration for experiment" not in output
    assert "Connecting to existing Ray cluster" not in output  # the driver never even joined Ray
