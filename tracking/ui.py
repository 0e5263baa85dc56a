"""`ganmix ui`: the MLflow UI over a local store, opened at the runs table of the model-training view."""

from __future__ import annotations

import os
import socket
import sys

from ganmix.tracking.describe import SHARED_VIEW, VIEW_KEY
from ganmix.tracking.location import local_store_missing
from ganmix.tracking.store import TrackingError, client, retry


def runs_link(base_url: str, experiment_id: str, *, shared_view: bool = False) -> str:
    """The runs table in MLflow 3's model-training view (not its GenAI traces page); with `shared_view`,
    showing the columns the latest search chose (tracking.describe.share_view)."""
    view = f"&viewStateShareKey={VIEW_KEY}" if shared_view else ""
    return f"{base_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning{view}"


def check_port(host: str, port: int) -> None:
    """Fail with one line before exec'ing the server when it could not listen (the CLI's pre-flight has
    checked the port's range already)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise TrackingError(f"cannot serve the MLflow UI on {host}:{port}: {exc.strerror or exc}; "
                                "pick another --port") from None


def ganmix_experiments(uri: str) -> list[tuple[str, str, bool]]:
    """(name, id, has ganmix's shared view) of the ganmix experiments in a store, newest activity first;
    none for a missing store."""
    if local_store_missing(uri):
        return []
    found = retry(client(uri).search_experiments, order_by=["last_update_time DESC"])
    return [(e.name, e.experiment_id, SHARED_VIEW in e.tags) for e in found if e.name.startswith("ganmix/")]


def serve(uri: str, *, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Print where to click, then replace this process with the MLflow server (signals reach it)."""
    check_port(host, port)
    base = f"http://{host}:{port}"
    experiments = ganmix_experiments(uri)
    print(f"MLflow UI over {uri} at {base} (Ctrl-C stops it)")
    for name, experiment_id, shared in experiments:
        print(f"  {name}: {runs_link(base, experiment_id, shared_view=shared)}")
    if not experiments:
        print("  no ganmix searches in this store yet (run `ganmix search`)")
    sys.stdout.flush()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    os.execv(sys.executable, command)
