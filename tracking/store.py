"""Where runs go: the tracking URI, the experiment per data set, reachability, retried calls."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mlflow import MlflowClient

log = logging.getLogger(__name__)
T = TypeVar("T")

# Retry transient failures (a restarting server, a locked SQLite file) for about this long.
RETRY_SECONDS = float(os.environ.get("GANMIX_TRACKING_RETRY_SECONDS", "90"))


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI and what went wrong."""


def default_tracking_uri(results_dir: str | Path) -> str:
    """An embedded SQLite store inside the results folder: `mlflow ui` and `ganmix ui` open it."""
    return f"sqlite:///{(Path(results_dir) / 'mlflow.db').resolve()}"


def resolve_tracking_uri(uri: str | None, results_dir: str | Path) -> str:
    """An explicit URI wins, then MLFLOW_TRACKING_URI, then the embedded store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(results_dir)


def is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/"))


def local_artifact_root(uri: str) -> str | None:
    """Artifacts next to a local SQLite store; a server decides for itself (--serve-artifacts)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


def check_reachable(uri: str, *, timeout: float = 10.0) -> None:
    """Fail before any training when the tracking store cannot be reached."""
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise TrackingError(
                f"MLflow tracking server {uri} is unreachable ({type(exc).__name__}: {exc}); "
                "start it or pass another --tracking-uri"
            ) from None


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def experiment_name(dataset: str) -> str:
    """One experiment per data set; a folder data set is named after its folder."""
    if dataset.startswith("folder:"):
        return f"ganmix/{Path(dataset[len('folder:'):]).resolve().name}"
    return f"ganmix/{dataset}"


def ensure_experiment(mlflow_client: MlflowClient, dataset: str, uri: str) -> str:
    name = experiment_name(dataset)
    found = retry(mlflow_client.get_experiment_by_name, name)
    if found is not None:
        return found.experiment_id
    try:
        # The experiment kind makes MLflow 3's UI open the runs table (not its GenAI views).
        return retry(mlflow_client.create_experiment, name, artifact_location=_artifact_location(uri, name),
                     tags={"mlflow.experimentKind": "custom_model_development"})
    except Exception:  # created concurrently by another process
        found = retry(mlflow_client.get_experiment_by_name, name)
        if found is None:
            raise
        return found.experiment_id


def _artifact_location(uri: str, name: str) -> str | None:
    root = local_artifact_root(uri)
    return f"{root}/{name.replace('/', '_')}" if root else None


def retry(fn: Callable[..., T], *args: object, seconds: float | None = None, **kwargs: object) -> T:
    """Call `fn`, retrying transient errors with backoff for up to `seconds` (RETRY_SECONDS)."""
    deadline = time.monotonic() + (RETRY_SECONDS if seconds is None else seconds)
    delay = 0.5
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # MLflow wraps HTTP, SQL and OS errors in many types
            if not _transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("tracking call %s failed (%s); retrying in %.1fs", getattr(fn, "__name__", fn), exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def _transient(exc: Exception) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    permanent = ("resource_already_exists", "invalid_parameter_value", "resource_does_not_exist", "already exists")
    if any(p in text for p in permanent):
        return False
    transient = ("locked", "connection", "timeout", "timed out", "temporarily", "max retries",
                 "refused", "reset", "unavailable", "operationalerror")
    # Server-side status codes as whole numbers: a URL on MLflow's usual port 5000 is no HTTP 500.
    return any(t in text for t in transient) or re.search(r"(?<![\w:])50[0234](?!\w)", text) is not None
