"""Several ganmix commands on one results folder at once (issue 18): the store is created and migrated
by one of them at a time (a file lock), none corrupts it, and every run lands under its own parent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ganmix.tracking import store

# Two without --name: started in the same second, their default names (data set and time) would be equal.
SEARCHES = ("named", None, None)
TRIALS = 2
SPEC = {
    "dataset": "digits", "trials": TRIALS, "max_concurrent": 1, "cpus_per_trial": 1,
    "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
    "space": {"generator": ["none", "dcgan"]},
    "fixed": {"generator_epochs": 1, "classifier_epochs": 1, "augment": "none"},
}

_OPEN_STORE = "import sys; from ganmix.tracking import store; store.check_reachable(sys.argv[1]); print('ok')"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANMIX_RESULTS", "RAY_ADDRESS")}


def test_commands_opening_a_fresh_store_at_once_all_succeed(tmp_path: Path) -> None:
    """The race issue 18 found, without Ray: four processes create one fresh store at the same moment."""
    uri = store.default_tracking_uri(tmp_path / "results")
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_STORE, uri], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    store.check_local_store(tmp_path / "results" / "mlflow.db")  # not damaged, no half-done migration
    assert store.client(uri).search_experiments() is not None


def test_a_damaged_store_is_one_line_before_any_work(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "mlflow.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 84 + os.urandom(2000))
    with pytest.raises(store.TrackingError, match=r"mlflow\.db is damaged .*restore it from a backup"):
        store.check_reachable(store.default_tracking_uri(results))


def test_pre_flight_leaves_a_store_being_created_to_the_locked_check(tmp_path: Path) -> None:
    """A store another command is creating (its lock held) looks half-written: pre-flight, which takes no
    lock, must not call it damaged; once the lock is free, a truly empty file is."""
    from ganmix.models.files import file_lock
    from ganmix.tracking.location import check_local_store_unless_busy

    db = tmp_path / "mlflow.db"
    db.write_bytes(b"")
    with file_lock(db):
        check_local_store_unless_busy(db)  # busy: judged later, under the lock
    with pytest.raises(store.TrackingError, match=r"is empty \(0 bytes\)"):
        check_local_store_unless_busy(db)


@pytest.mark.integration
def test_three_searches_started_at_once_on_a_fresh_folder(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    results = tmp_path / "results"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "ganmix.search.cli", "search", "--config", str(spec), "--results-dir", str(results),
         *(["--name", name] if name else []), "--no-sample-metrics", "--quiet"], cwd=tmp_path, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in SEARCHES]
    outputs = [proc.communicate(timeout=1500)[0] for proc in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-3000:]
    client = MlflowClient(tracking_uri=store.default_tracking_uri(results))
    experiment = client.get_experiment_by_name("ganmix/digits")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.data.tags["ganmix.search"]: r for r in runs if r.data.tags.get("ganmix.kind") == "search"}
    assert len(parents) == len(SEARCHES) and "named" in parents  # three parents, three distinct names
    for name, parent in parents.items():
        assert parent.info.status == "FINISHED", name
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                    and r.data.tags.get("ganmix.kind") == "trial"]
        assert len(children) == TRIALS, name
        assert all(c.info.status == "FINISHED" and "val/auc" in c.data.metrics for c in children), name


@pytest.mark.integration
def test_a_killed_train_does_not_leave_its_run_running(tmp_path: Path) -> None:
    """SIGTERM during `ganmix train` (a scheduler stopping it) stops it as Ctrl-C does: its MLflow run closed
    KILLED (not RUNNING), exit 143 (128 + SIGTERM), no traceback."""
    import signal
    import time

    from mlflow import MlflowClient

    from ganmix.search.recipe import Recipe

    recipe = tmp_path / "recipe.yaml"
    Recipe(generator="none", synthetic_ratio=0.0, classifier_epochs=100_000).save(recipe)
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "ganmix.search.cli", "train", "--recipe", str(recipe),
                             "--results-dir", str(results), "--no-sample-metrics", "--cpu"], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs, deadline = [], time.monotonic() + 600
    while not runs and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(2)
        # Read-only SQL while `train` runs: an MLflow client here would open (and may migrate) the store
        # beside `train`, which is not what this test is about.
        runs = _running_runs(results / "mlflow.db")
    assert runs, proc.communicate()[0][-2000:] if proc.poll() is not None else "no run started"
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 143 and "Traceback" not in output, output[-2000:]
    client = MlflowClient(tracking_uri=store.default_tracking_uri(results))
    assert client.get_run(runs[0]).info.status == "KILLED"


def _running_runs(db: Path) -> list[str]:
    """The ids of the store's RUNNING runs, read with SQLite alone (nothing while the store is being made)."""
    import sqlite3

    if not db.is_file():
        return []
    try:
        connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return [row[0] for row in connection.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'")]
        finally:
            connection.close()
    except sqlite3.Error:  # not created yet, or busy: look again
        return []
