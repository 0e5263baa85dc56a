"""Pre-flight checks that look at the network or a URI: the tracking store, Tune storage, the Ray address.
A TCP connect (CONNECT_TIMEOUT) stands in for the libraries' own waits, which last minutes."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, urlsplit

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
            _check_databricks(uri, label)
            return
        raise PreflightError(f"{label} {quote(uri)} is a plain path; expected a URI such as "
                             f"sqlite:///{Path(uri).expanduser().resolve() / 'mlflow.db'} or http://HOST:5000 "
                             "(or pass the folder as --results-dir)")
    parts = _split(uri, label, "a URI such as http://HOST:5000 or http://[::1]:5000")
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
        _check_mlflow_server(uri, label)
    elif scheme in _DATABASE_PORTS:  # a database server: its port answers, or one line (its driver waits minutes)
        if not parts.hostname:
            raise PreflightError(f"{label} {quote(uri)}: no host; expected {scheme}://USER:PASSWORD@HOST:PORT/DB")
        try:
            port = parts.port or _DATABASE_PORTS[scheme]
        except ValueError:
            raise PreflightError(f"{label} {quote(uri)}: the port is not a number in 1..65535") from None
        _probe(parts.hostname, port, f"{label} {_hide_password(uri)}: the {scheme} database server is unreachable",
               "start it or pass another --tracking-uri")
    elif scheme in ("databricks", "databricks-uc", "uc"):
        _check_databricks(uri, label)


# The default port of each database MLflow can track into (SQLAlchemy's driver would wait minutes).
_DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def _split(uri: str, label: str, expected: str) -> SplitResult:
    """urlsplit, whose ValueError (an IPv6 bracket left open: `http://[::1`) becomes one line."""
    try:
        return urlsplit(uri)
    except ValueError as exc:
        raise PreflightError(f"{label} {quote(uri)} is not a valid URI ({exc}); expected {expected}") from None


def _hide_password(uri: str) -> str:
    parts = urlsplit(uri)
    return uri.replace(f":{parts.password}@", ":***@") if parts.password else uri


def _check_mlflow_server(uri: str, label: str) -> None:
    """The server that answers is an MLflow tracking server: its REST API answers a search for one
    experiment with JSON (or asks for credentials). Another web server would fail at the first logged run."""
    import json
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT) as response:  # noqa: S310 - http(s) only
            body = json.loads(response.read(1_000_000) or b"{}")
        if isinstance(body, dict):
            return
        problem = "it answers with JSON that is not MLflow's"
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # an MLflow server with authentication: the client sends its credentials
            return
        problem = f"GET /api/2.0/mlflow/experiments/search gave HTTP {exc.code}"
    except (ValueError, UnicodeDecodeError):
        problem = "it answers /api/2.0/mlflow/experiments/search with something that is not JSON"
    except (OSError, urllib.error.URLError) as exc:
        import ssl

        if isinstance(exc, ssl.SSLError) or isinstance(getattr(exc, "reason", None), ssl.SSLError):
            return  # a certificate MLflow's client may accept (MLFLOW_TRACKING_INSECURE_TLS, its own CA bundle)
        problem = f"it did not answer within {CONNECT_TIMEOUT:g} s ({getattr(exc, 'reason', exc)})"
    raise PreflightError(f"{label} {uri}: the server there is not an MLflow tracking server ({problem}); pass "
                         "the URI of `mlflow server` (or `ganmix ui`), or drop --tracking-uri for the local store")


def _check_databricks(uri: str, label: str) -> None:
    """Databricks needs credentials (DATABRICKS_HOST and a token, or ~/.databrickscfg); without them its
    client keeps asking for minutes."""
    profile_file = Path(os.environ.get("DATABRICKS_CONFIG_FILE", "~/.databrickscfg")).expanduser()
    host = os.environ.get("DATABRICKS_HOST")
    if not host and not profile_file.is_file():
        raise PreflightError(f"{label} {uri}: no Databricks credentials (DATABRICKS_HOST and DATABRICKS_TOKEN, or "
                             f"{profile_file}); set them, or drop --tracking-uri for the local store")
    if host:
        split = urlsplit(host if "://" in host else f"https://{host}")
        if split.hostname:
            _probe(split.hostname, split.port or 443, f"{label} {uri}: the Databricks host {host} is unreachable",
                   "check DATABRICKS_HOST and the network")


def _check_sqlite_uri(uri: str, label: str) -> None:
    from ganmix.tracking.location import TrackingError, check_local_store_unless_busy, local_store_file

    db = local_store_file(uri)
    if db is not None and db.name == ":memory:":
        raise PreflightError(f"{label} {uri} is an in-memory store: every result would vanish when the command "
                             "ends; pass --results-dir FOLDER or sqlite:///ABSOLUTE/PATH/mlflow.db")
    if db is None:
        raise PreflightError(f"{label} {quote(uri)}: expected sqlite:///ABSOLUTE/PATH/mlflow.db")
    if len(os.fsencode(str(db))) > _SQLITE_MAX_PATH:
        raise PreflightError(f"{label} {quote(str(db))}: the store's path is {len(os.fsencode(str(db)))} bytes long; "
                             f"SQLite opens paths of at most {_SQLITE_MAX_PATH}: pick a shorter --results-dir")
    if db.is_dir():
        raise PreflightError(f"{label} {uri}: {db} is a folder; expected a SQLite file such as {db / 'mlflow.db'}")
    check_writable_dir(db.parent, label)
    try:
        check_local_store_unless_busy(db)
    except TrackingError as exc:
        raise PreflightError(str(exc)) from None


# SQLite's Unix file layer opens paths of at most this many bytes (its MAX_PATHNAME); a longer one fails inside
# MLflow as "unable to open database file", retried for minutes.
_SQLITE_MAX_PATH = 512


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
    parts = _split(storage, "--storage", "a folder or s3://BUCKET/PREFIX")
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


def check_address(address: str | None, label: str = "--address") -> None:
    """A Ray address answers a TCP connect within CONNECT_TIMEOUT; ray.init itself would wait for minutes.
    `label` says where it came from (the flag, or RAY_ADDRESS, which Ray honours as the flag)."""
    if address in (None, "local"):
        return
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS") if label != "RAY_ADDRESS" else None
        target = target if target not in (None, "", "auto") else _current_cluster()
        if not target:  # ray.init would look for a cluster for minutes
            raise PreflightError(f"{label} auto: no Ray cluster is running on this machine (none recorded in "
                                 f"{_current_cluster_file()}); start one with `ray start --head`, pass the head "
                                 "node's HOST:PORT, or drop it to run on this machine alone")
    hostport = target.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise PreflightError(f"{label} {quote(address)}: expected HOST:PORT, ray://HOST:PORT or auto")
    _probe(host.strip("[]"), int(port), f"{label} {address}: no Ray cluster answers at {host}:{port}",
           "start one with `ray start --head` or pass the head node's address")


def _current_cluster_file() -> Path:
    return Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"


def _current_cluster() -> str | None:
    try:
        return _current_cluster_file().read_text().strip() or None
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
