"""Pre-flight checks that look at the network or a URI: the tracking store, Tune storage, the Ray address.
A TCP connect (CONNECT_TIMEOUT) stands in for the libraries' own waits, which last minutes."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ganmix.search.preflight.errors import PreflightError, quote
from ganmix.search.preflight.paths import check_writable_dir

CONNECT_TIMEOUT = float(os.environ.get("GANMIX_CONNECT_TIMEOUT", "5"))
_TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks",
                     "databricks-uc", "uc")
_REMOTE_STORAGE = {"s3": ("s3.amazonaws.com", 443), "gs": ("storage.googleapis.com", 443),
                   "gcs": ("storage.googleapis.com", 443)}
_OTHER_STORAGE = ("hdfs", "viewfs", "abfs", "abfss", "mock")  # pyarrow file systems: judged by Tune


def check_tracking_uri(uri: str, label: str) -> None:
    """A known MLflow scheme; a local store's folder writable and its file usable; a server reachable."""
    if "://" not in uri:
        if uri in ("databricks", "databricks-uc", "uc"):
            return
        raise PreflightError(f"{label} {quote(uri)} is a plain path; expected a URI such as "
                             f"sqlite:///{Path(uri).expanduser().resolve() / 'mlflow.db'} or http://HOST:5000 "
                             "(or pass the folder as --results-dir)")
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    if scheme not in _TRACKING_SCHEMES:
        raise PreflightError(f"{label} {quote(uri)}: unknown scheme {quote(parts.scheme)}; expected one of "
                             f"{', '.join(_TRACKING_SCHEMES)}")
    if scheme == "sqlite":
        _check_sqlite_uri(uri, label)
    elif scheme == "file":
        _check_file_store(uri, label)
    elif scheme in ("http", "https"):
        if not parts.hostname:
            raise PreflightError(f"{label} {quote(uri)}: no host; expected {scheme}://HOST:PORT")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise PreflightError(f"{label} {quote(uri)}: the port is not a number in 1..65535") from None
        _probe(parts.hostname, port, f"{label} {uri}: the MLflow tracking server is unreachable",
               "start it or pass another --tracking-uri")


def _check_sqlite_uri(uri: str, label: str) -> None:
    from ganmix.tracking.location import TrackingError, check_local_store_unless_busy, local_store_file

    db = local_store_file(uri)
    if db is None:
        raise PreflightError(f"{label} {quote(uri)}: expected sqlite:///ABSOLUTE/PATH/mlflow.db")
    if db.is_dir():
        raise PreflightError(f"{label} {uri}: {db} is a folder; expected a SQLite file such as {db / 'mlflow.db'}")
    check_writable_dir(db.parent, label)
    try:
        check_local_store_unless_busy(db)
    except TrackingError as exc:
        raise PreflightError(str(exc)) from None


def _check_file_store(uri: str, label: str) -> None:
    """MLflow 3 keeps its file store in maintenance mode: it refuses it at the first call, after the work."""
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true", "yes"):
        check_writable_dir(Path(urlsplit(uri).path), label)
        return
    raise PreflightError(f"{label} {quote(uri)}: MLflow no longer supports file stores (maintenance mode); use a "
                         "SQLite store (--results-dir FOLDER, or sqlite:///FOLDER/mlflow.db), migrate old runs with "
                         "`mlflow migrate-filestore`, or set MLFLOW_ALLOW_FILE_STORE=true")


def check_storage(storage: str | None) -> None:
    """Tune storage: a writable folder, or a cloud bucket whose endpoint answers within CONNECT_TIMEOUT."""
    if storage is None:
        return
    if "://" not in storage or storage.startswith("file://"):
        check_writable_dir(urlsplit(storage).path if storage.startswith("file://") else storage, "--storage")
        return
    parts = urlsplit(storage)
    if parts.scheme in _OTHER_STORAGE:
        return
    if parts.scheme not in _REMOTE_STORAGE:
        raise PreflightError(f"--storage {quote(storage)}: unknown scheme {quote(parts.scheme)}; expected a folder, "
                             f"{', '.join(s + '://' for s in (*_REMOTE_STORAGE, *_OTHER_STORAGE))}")
    if not parts.netloc:
        raise PreflightError(f"--storage {quote(storage)}: no bucket; expected {parts.scheme}://BUCKET/PREFIX")
    host, port = _REMOTE_STORAGE[parts.scheme]
    endpoint = (parse_qs(parts.query).get("endpoint_override") or [None])[0]
    if parts.scheme == "s3":
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        try:
            host, port = split.hostname or host, split.port or (443 if split.scheme == "https" else 80)
        except ValueError:
            raise PreflightError(f"--storage {storage}: endpoint {quote(endpoint)} has a bad port") from None
    _probe(host, port, f"--storage {storage}: its endpoint is unreachable",
           "check the network, the endpoint (AWS_ENDPOINT_URL) or pass a shared folder")


def check_address(address: str | None) -> None:
    """A Ray address answers a TCP connect within CONNECT_TIMEOUT; ray.init itself would wait for minutes."""
    if address in (None, "local"):
        return
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS") or _current_cluster()
        if not target:
            return  # Ray says itself, at once, that no cluster is running
    hostport = target.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise PreflightError(f"--address {quote(address)}: expected HOST:PORT, ray://HOST:PORT or auto")
    _probe(host.strip("[]"), int(port), f"--address {address}: no Ray cluster answers at {host}:{port}",
           "start one with `ray start --head` or pass the head node's address")


def _current_cluster() -> str | None:
    path = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _probe(host: str, port: int, failure: str, hint: str) -> None:
    if not 0 < port < 65536:
        raise PreflightError(f"{failure}: port {port} is not a TCP port; {hint}")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except (OSError, UnicodeError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (
            getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        raise PreflightError(f"{failure} ({reason}); {hint}") from None
