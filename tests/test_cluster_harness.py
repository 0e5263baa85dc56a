"""Self-test of the cluster harness: a task on a worker raylet logs to a real MLflow server over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from cluster_harness import (
    MlflowServer,
    MlflowServerError,
    head_node_id,
    local_ray_cluster,
    mlflow_and_ray,
    worker_node_ids,
)
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.cluster

ARTIFACT_NAME = "note.txt"
ARTIFACT_TEXT = "logged from a worker node"


@ray.remote(num_cpus=1)
def _log_from_worker(tracking_uri: str, scratch: str) -> tuple[str, str]:
    """Log one param, one metric and one small artifact; return (node id, run id)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment("harness-selftest")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "ratio", "0.5")
    client.log_metric(run_id, "val_auc", 0.75, step=1)
    note = Path(scratch) / ARTIFACT_NAME
    note.write_text(ARTIFACT_TEXT)
    client.log_artifact(run_id, str(note))
    client.set_terminated(run_id)
    return ray.get_runtime_context().get_node_id(), run_id


def _read_back(uri: str, run_id: str, dst: Path) -> tuple[dict[str, str], dict[str, float], str]:
    client = MlflowClient(tracking_uri=uri)
    data = client.get_run(run_id).data
    dst.mkdir(parents=True, exist_ok=True)
    local = client.download_artifacts(run_id, ARTIFACT_NAME, str(dst))
    return data.params, data.metrics, Path(local).read_text()


def test_worker_task_logs_over_http_and_survives_server_restart(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with mlflow_and_ray(tmp_path / "server", num_workers=2) as (server, cluster):
        node_id, run_id = ray.get(_log_from_worker.remote(server.uri, str(scratch)), timeout=60)

        # The head has 0 CPUs, so a 1-CPU task must have run on a worker raylet.
        assert node_id != head_node_id(cluster)
        assert node_id in worker_node_ids(cluster)

        expected = ({"ratio": "0.5"}, {"val_auc": 0.75}, ARTIFACT_TEXT)
        assert _read_back(server.uri, run_id, tmp_path / "before") == expected
        # Artifacts went through the server's proxy into its own folder, not the client's.
        assert list(server.artifacts_dir.rglob(ARTIFACT_NAME))

        port = server.port
        server.restart()
        assert server.port == port
        assert _read_back(server.uri, run_id, tmp_path / "after") == expected


def test_waiting_on_a_server_never_started_fails_clearly(tmp_path: Path) -> None:
    server = MlflowServer(root=tmp_path, port=5999)
    assert server.uri == "http://127.0.0.1:5999"
    with pytest.raises(MlflowServerError, match="never started"):
        server.wait_until_healthy()


def test_cluster_without_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="num_workers must be >= 1"), local_ray_cluster(num_workers=0):
        pass
