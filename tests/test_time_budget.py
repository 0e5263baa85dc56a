"""`ganmix search --time-budget`: Tune's time_budget_s ends the search cleanly (exit 0, parent FINISHED and
tagged, no trial run left RUNNING), not as an interrupted search."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from mlflow import MlflowClient

pytestmark = pytest.mark.integration

TRIALS = 40  # far more than fit in the budget on any machine
SPEC = {
    "dataset": "digits",
    "trials": TRIALS,
    "max_concurrent": 2,
    "space": {"generator_epochs": {"type": "int", "low": 1, "high": 2},
              "synthetic_ratio": {"type": "float", "low": 0.2, "high": 1.0},
              "generator": "default"},  # the default families; on the CPU the search says which it leaves out
    "fixed": {"classifier_epochs": 4, "classifier_min_steps": 0, "latent_dim": 16},
}


def test_time_budget_ends_the_search_cleanly(tmp_path):
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    done = subprocess.run(
        [sys.executable, "-m", "ganmix.search.cli", "search", "--config", str(spec), "--results-dir",
         str(tmp_path / "results"), "--name", "budget", "--time-budget", "6", "--no-sample-metrics", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ended by the time budget of 6 s" in done.stdout
    assert "interrupted" not in done.stdout + done.stderr
    from ganmix.search.preflight import local_gpus
    from ganmix.search.spec import cpu_left_out

    if local_gpus() == 0 and cpu_left_out():  # one line naming the GPU-only families (ddpm), printed once
        assert done.stdout.count(cpu_left_out()) == 1

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganmix/digits")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if r.data.tags.get("ganmix.kind") == "search"]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["ganmix.stopped_by"] == "time_budget"
    assert "ganmix.error" not in parent.data.tags
    children = [r for r in runs if r.data.tags.get("ganmix.kind") == "trial"]
    assert len(children) < TRIALS
    assert not [r for r in children if r.info.status == "RUNNING"]
    for run in children:  # a trial the budget stopped says so; the others finished
        if run.info.status == "KILLED":
            assert "time budget of 6 s" in run.data.tags["ganmix.error"]
        else:
            assert run.info.status == "FINISHED", run.info
