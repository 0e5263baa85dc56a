"""A fresh results folder starts from a copy of an already-migrated empty MLflow store (the user cache keeps
one per MLflow version): MLflow accepts the copy as its own, and the copy is the same schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from ganmix.tracking import store


def _schema(db: Path) -> tuple[str, list[tuple[str, list[str]]]]:
    connection = sqlite3.connect(db)
    try:
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        tables = connection.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') "
                                    "ORDER BY name").fetchall()
    finally:
        connection.close()
    # Alembic's batch migrations rebuild a table with its constraints in an order that can differ from one
    # migration to the next (two from-scratch MLflow stores differ so): compare each table's clauses as a set.
    return version, [(name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
                     for name, sql in tables]


def test_a_fresh_store_is_a_copy_of_the_migrated_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANMIX_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.chdir(tmp_path)
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    store.check_reachable(f"sqlite:///{first}")
    template = tmp_path / "user-cache" / "store-template" / f"mlflow-{mlflow.__version__}.db"
    assert template.is_file() and first.is_file()
    stamp = template.stat().st_mtime_ns
    store.check_reachable(f"sqlite:///{second}")
    assert template.stat().st_mtime_ns == stamp  # made once, copied since
    assert _schema(second) == _schema(template)

    # MLflow itself, migrating from scratch, makes the same schema.
    scratch = tmp_path / "scratch.db"
    MlflowClient(f"sqlite:///{scratch}").search_experiments()
    assert _schema(second) == _schema(scratch)

    # And accepts the copy as its own: experiments, runs, metrics; the Default experiment where MLflow puts it.
    client = MlflowClient(f"sqlite:///{second}")
    (default,) = client.search_experiments()
    assert default.artifact_location == str(tmp_path / "mlruns" / "0")
    experiment = store.ensure_experiment(f"sqlite:///{second}", "digits")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "val_auc", 0.9)
    client.set_terminated(run.info.run_id)
    assert client.get_run(run.info.run_id).data.metrics == {"val_auc": 0.9}
    assert not list(second.parent.glob(".*.tmp"))  # no temporary copy left behind


def test_without_a_usable_cache_mlflow_creates_the_store_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("GANMIX_CACHE", str(blocked))
    db = tmp_path / "results" / "mlflow.db"
    store.check_reachable(f"sqlite:///{db}")
    assert MlflowClient(f"sqlite:///{db}").search_experiments()[0].name == "Default"
