"""Where runs go: the tracking URI, the experiment per data set, reachability, retried calls."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from filelock import Timeout
from mlflow import MlflowClient

from ganmix.models.files import atomic_path, file_lock, user_cache_dir
from ganmix.tracking.claims import holders_text, use_folder
from ganmix.tracking.location import (  # noqa: F401 - re-exported: callers ask the store module
    TrackingError,
    check_local_store,
    default_tracking_uri,
    is_local_store,
    local_artifact_root,
    local_store_file,
    one_line,
    resolve_tracking_uri,
)
from ganmix.tracking.store_guard import busy_line, is_locked_error

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a command waits for another one creating or migrating the same local store.
STORE_LOCK_SECONDS = float(os.environ.get("GANMIX_STORE_LOCK_SECONDS", "600"))
# Retry transient failures (a restarting server, a locked SQLite file) for about this long.
RETRY_SECONDS = float(os.environ.get("GANMIX_TRACKING_RETRY_SECONDS", "90"))


def check_reachable(uri: str, *, timeout: float = 10.0) -> None:
    """Fail before any training when the tracking store cannot be used: a local store is checked and, the
    first time, created and migrated under a file lock (several ganmix commands may start at once on one
    results folder); a server must answer its health check."""
    db = local_store_file(uri)
    if db is not None:
        open_local_store(uri, db)
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


def open_local_store(uri: str, db: Path) -> None:
    """Create or migrate the SQLite store one process at a time: MLflow's migrations are not safe to run
    concurrently (two at once leave `_alembic_tmp_*` tables behind and the store broken for good)."""
    if not db.parent.exists():  # a new store's folder: ours, and no other command's clean-up removes it
        use_folder(db.parent)
    try:
        lock = file_lock(db, timeout=STORE_LOCK_SECONDS).acquire()
    except Timeout:
        raise TrackingError(_lock_timeout_line(db)) from None
    except OSError as exc:
        raise TrackingError(f"cannot lock the MLflow store {db} ({exc.strerror or exc}); check the folder's "
                            "permissions or point --results-dir elsewhere") from None
    with lock:
        check_local_store(db)  # under the lock: a store being created is never judged half-written
        if not db.exists():
            _copy_template(db)
        try:
            client(uri).search_experiments(max_results=1)  # MLflow creates and migrates the store here
        except Exception as exc:  # noqa: BLE001 - MLflow wraps SQL, OS and schema errors in many types
            if is_locked_error(exc):  # another program holds SQLite's lock: busy, not damaged
                raise TrackingError(busy_line(db)) from None
            raise TrackingError(f"the MLflow store {db} cannot be opened ({one_line(exc)}); restore it from a "
                                "backup, or point --results-dir elsewhere") from None


def _lock_timeout_line(db: Path) -> str:
    lock = db.with_name(db.name + ".lock")
    return (f"the MLflow store {db} is busy: {holders_text(lock)} has held its lock (creating or migrating it) "
            f"for {STORE_LOCK_SECONDS:g} s; wait for it to finish (or end it), or point --results-dir elsewhere")


def _copy_template(db: Path) -> None:
    """A fresh store as a copy of an empty one MLflow already created and migrated (kept in the user cache per
    MLflow version): seconds saved on every new results folder. Best effort: on any failure MLflow creates
    and migrates the store itself, as it would have anyway."""
    try:
        template = store_template()
        with atomic_path(db) as tmp:  # never a half-copied store in place
            shutil.copyfile(template, tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # as MLflow would have created it (mkstemp makes it private)
            _claim(tmp)
    except Exception as exc:  # noqa: BLE001 - the slow path is always there
        log.debug("no store template for %s (%s); MLflow creates the store", db, one_line(exc))


def store_template() -> Path:
    """The migrated empty SQLite store of the installed MLflow, created once per user and MLflow version."""
    import mlflow

    path = user_cache_dir("store-template", f"mlflow-{mlflow.__version__}.db")
    if path.is_file():
        return path
    with file_lock(path, timeout=STORE_LOCK_SECONDS):
        if not path.is_file():
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=".template-") as scratch:
                fresh = Path(scratch) / "store.db"
                client(f"sqlite:///{fresh}").search_experiments(max_results=1)  # MLflow creates and migrates it
                os.replace(fresh, path)
    return path


def _claim(db: Path) -> None:
    """Make a template copy look created here and now: its Default experiment's artifact folder is where
    MLflow itself would have put it (./mlruns/0 of the current folder), and its creation time is now."""
    import sqlite3

    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    location = append_to_uri_path(resolve_uri_if_local(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH), "0")
    now = int(time.time() * 1000)
    connection = sqlite3.connect(db)
    try:
        with connection:
            connection.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                               "WHERE experiment_id = 0", (location, now, now))
    finally:
        connection.close()


def _umask() -> int:
    """The process's umask, read without setting it (os.umask sets it, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def experiment_name(dataset: str) -> str:
    """One experiment per data set; a folder data set is named after its folder."""
    if dataset.startswith("folder:"):
        return f"ganmix/{Path(dataset[len('folder:'):]).resolve().name}"
    return f"ganmix/{dataset}"


# MLflow 3's experiment kind: model training, not GenAI (the UI's mode itself is set by tracking/ui_app.py).
EXPERIMENT_KIND, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def ensure_experiment(uri: str, dataset: str) -> str:
    """The id of the data set's experiment at `uri`, created when missing; one from before the kind tag
    gets it."""
    mlflow_client = client(uri)
    name = experiment_name(dataset)
    found = retry(mlflow_client.get_experiment_by_name, name)
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING_KIND:
            retry(mlflow_client.set_experiment_tag, found.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING_KIND)
        return found.experiment_id
    try:
        return retry(mlflow_client.create_experiment, name, artifact_location=_artifact_location(uri, name),
                     tags={EXPERIMENT_KIND: MODEL_TRAINING_KIND})
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
    permanent = ("resource_already_exists", "invalid_parameter_value", "resource_does_not_exist", "already exists",
                 "readonly database", "read-only", "malformed", "not a database", "disk i/o error")
    if any(p in text for p in permanent):
        return False
    transient = ("locked", "connection", "timeout", "timed out", "temporarily", "max retries",
                 "refused", "reset", "unavailable", "operationalerror")
    # Server-side status codes as whole numbers: a URL on MLflow's usual port 5000 is no HTTP 500.
    return any(t in text for t in transient) or re.search(r"(?<![\w:])50[0234](?!\w)", text) is not None
