"""Ctrl+C on the search driver, then `ganmix search --resume NAME`: nothing lost, nothing run twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from cluster_harness import (
    MlflowServer,
    SearchProcess,
    child_runs_now,
    run_search_cli,
    search_runs,
    stack,  # noqa: F401 - a module-scoped pytest fixture
    tune_summary,
    wait_until,
    write_search_spec,
)
from mlflow import MlflowClient
from ray.cluster_utils import Cluster

pytestmark = pytest.mark.cluster

TRIALS = 4
NAME = "resumable"


def _by_status(runs: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for run in runs:
        out.setdefault(run.info.status, []).append(run)
    return out


def test_interrupted_search_resumes_without_rerunning_finished_trials(
    stack: tuple[MlflowServer, Cluster], tmp_path: Path
) -> None:
    server, cluster = stack
    results = tmp_path / "results"
    # Tune storage apart from the results folder, given relative to the driver's working directory.
    where = ["--address", cluster.address, "--tracking-uri", server.uri, "--results-dir", str(results),
             "--storage", "tune-storage", "--no-sample-metrics"]
    spec = write_search_spec(tmp_path / "spec.yaml", trials=TRIALS)

    with SearchProcess(["--config", str(spec), "--name", NAME, *where], log_path=tmp_path / "first.log",
                       cwd=tmp_path) as first:
        # Interrupt once a trial has finished while another is still training its generator, so
        # that one is well short of its last epoch when the driver stops.
        def finished_and_training() -> bool:
            runs = _by_status(child_runs_now(server.uri, NAME))
            training = [r for r in runs.get("RUNNING", [])
                        if r.data.tags.get("ganmix.baseline") == "false" and "val/auc" not in r.data.metrics]
            return bool(runs.get("FINISHED") and training)

        wait_until(finished_and_training, timeout_s=180, interval_s=0.25,
                   what="a FINISHED trial run and a RUNNING one still training its generator")
        first.interrupt()
        code = first.wait(timeout_s=120)
        output = first.output()
    assert code == 130, f"an interrupted search must not exit as a success (exit {code}):\n{output[-3000:]}"
    assert "--resume" in output

    parent, before = search_runs(server.uri, NAME)
    assert parent.info.status == "KILLED"
    states = _by_status(before)
    assert not states.get("RUNNING"), "the interrupted driver left child runs RUNNING"
    assert states.get("FINISHED") and states.get("KILLED"), Counter(r.info.status for r in before)
    finished_before = {r.data.tags["ganmix.trial_id"]: r.info.run_id for r in states["FINISHED"]}
    interrupted = {r.data.tags["ganmix.trial_id"]: r.info.run_id for r in states["KILLED"]}
    assert not set(finished_before) & set(interrupted)

    assert (tmp_path / "tune-storage" / NAME / "tuner.pkl").is_file()
    code, output = run_search_cli(["--resume", NAME, *where], log_path=tmp_path / "resume.log", cwd=tmp_path)
    assert code == 0, output[-3000:]
    assert tune_summary(output) == (TRIALS, 0)

    resumed_parent, after = search_runs(server.uri, NAME)
    assert parent.data.tags.get("ganmix.error", "").endswith(f"--resume {NAME}")
    assert resumed_parent.info.run_id == parent.info.run_id and resumed_parent.info.status == "FINISHED"
    assert "ganmix.error" not in resumed_parent.data.tags
    assert not [r for r in after if r.info.status == "RUNNING"], "a child run was left RUNNING"
    finished = [r for r in after if r.info.status == "FINISHED"]
    finished_ids = Counter(r.data.tags["ganmix.trial_id"] for r in finished)
    # Exactly one finished run per Tune trial: completed-trial count is exact, nothing ran twice.
    assert len(finished_ids) == TRIALS and set(finished_ids.values()) == {1}, finished_ids
    by_trial = {r.data.tags["ganmix.trial_id"]: r for r in finished}
    for trial_id, run_id in finished_before.items():
        assert by_trial[trial_id].info.run_id == run_id, f"finished trial {trial_id} was re-run"
    for trial_id, old_run_id in interrupted.items():
        old = next(r for r in after if r.info.run_id == old_run_id)
        assert old.info.status == "KILLED" and old.data.tags.get("ganmix.error")
        rerun = by_trial[trial_id]  # rerun to completion as a new child of the same parent
        assert rerun.info.run_id != old_run_id
        assert rerun.data.tags["mlflow.parentRunId"] == parent.info.run_id
    # Optuna's state survived: the enqueued real-only baseline ran once, not again after resume.
    assert sum(r.data.tags.get("ganmix.baseline") == "true" for r in finished) == 1
    # The resumed search still draws Optuna's plots of the whole study on its parent.
    plots = {a.path for a in MlflowClient(server.uri).list_artifacts(parent.info.run_id, "optuna")}
    assert "optuna/optimization_history.png" in plots, plots
