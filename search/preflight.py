"""Pre-flight checks: every bad input fails here, as one line, before training, Ray or MLflow start.

The CLI calls these in order of cost: flags and paths (no torch, no Ray, no MLflow; well under a second),
then the spec (the Recipe's validation imports torch), then the data set, then the resources. Nothing
here creates a file or a folder: writability is probed with a temporary file that is removed again.
Field ranges are never restated here: space values are judged by building a Recipe, budget fields by
spec.check_budget, so each field's valid range keeps one source.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ganmix.search.space import CategoricalDim, Dim, FloatDim, IntDim, SpaceError

if TYPE_CHECKING:
    import argparse

    from ganmix.datasets import ImageDataset
    from ganmix.search.spec import SearchSpec

CONNECT_TIMEOUT = float(os.environ.get("GANMIX_CONNECT_TIMEOUT", "5"))
# Search names become folder names (Tune's experiment folder) and MLflow run names.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks",
                     "databricks-uc", "uc")
_REMOTE_STORAGE = {"s3": ("s3.amazonaws.com", 443), "gs": ("storage.googleapis.com", 443),
                   "gcs": ("storage.googleapis.com", 443)}
_OTHER_STORAGE = ("hdfs", "viewfs", "abfs", "abfss", "mock")  # pyarrow file systems: judged by Tune


class PreflightError(ValueError):
    """Bad input found before any work; the message names the flag, field or file and what was expected."""


# --- flags and paths (light: no torch, Ray or MLflow) -----------------------------------------------
def check_search_flags(args: argparse.Namespace) -> None:
    """Every `ganmix search` flag that can be judged without the spec."""
    from ganmix.search.spec import check_budget

    for field in ("trials", "max_concurrent", "cpus_per_trial", "gpus_per_trial"):
        value = getattr(args, field)
        if value is not None:
            check_budget(field, value, label=_flag(field))
    if args.address in (None, "local"):  # the resource flags against this machine, before the spec is built
        _check_fits(cpus_per_trial=args.cpus_per_trial or 0, gpus_per_trial=args.gpus_per_trial or 0,
                    cpus=local_cpus(), gpus=local_gpus(), where="this machine", hint=_LOCAL_HINT)
    if args.config is not None:
        check_input_file(args.config, "--config", "a search spec YAML file")
    for flag, name in (("--name", args.name), ("--resume", args.resume)):
        if name is not None:
            check_name(name, flag)
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        raise PreflightError(f"--data-dir {args.data_dir} is a file; expected a folder of <dataset>.npz files")
    check_store_flags(args)
    check_storage(args.storage)
    check_address(args.address)


def check_store_flags(args: argparse.Namespace) -> None:
    """--results-dir writable (or creatable) and the tracking URI well formed and reachable."""
    check_writable_dir(args.results_dir, "--results-dir")
    uri, label = tracking_uri_of(args)
    if uri is not None:
        check_tracking_uri(uri, label)


def tracking_uri_of(args: argparse.Namespace) -> tuple[str | None, str]:
    if args.tracking_uri:
        return args.tracking_uri, "--tracking-uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    return None, "--results-dir"


def check_name(name: str, label: str = "name") -> None:
    """A search name is a path component (Tune's folder) on every node: no separators, no dot-dot."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise PreflightError(f"{label} must be a plain name (letters, digits, '.', '_', '-'; starting with a "
                             f"letter or digit; at most 128 characters), got {name!r}")


def check_input_file(path: Path, label: str, expected: str) -> None:
    if path.is_dir():
        raise PreflightError(f"{label} {path} is a folder; expected {expected}")
    if not path.is_file():
        raise PreflightError(f"{label} {path} does not exist; expected {expected}")


def check_port(port: int, label: str = "--port") -> None:
    if not 1 <= port <= 65535:
        raise PreflightError(f"{label} must be in 1..65535 (a TCP port), got {port}")


def check_writable_dir(path: Path | str, label: str) -> None:
    """`path` is a writable folder, or one can be created there; creates nothing (the probe file is removed)."""
    path = Path(path).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise PreflightError(f"{label} {path} {what}; expected a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        where = "" if existing == path else f" (cannot create it in {existing})"
        raise PreflightError(f"{label} {path} is not writable{where}: {exc.strerror or exc}") from None


def check_tracking_uri(uri: str, label: str) -> None:
    """A known MLflow scheme; a local store's folder writable; a server reachable (a TCP connect)."""
    if "://" not in uri:
        if uri in ("databricks", "databricks-uc", "uc"):
            return
        raise PreflightError(f"{label} {uri!r} is a plain path; expected a URI such as "
                             f"sqlite:///{Path(uri).expanduser().resolve() / 'mlflow.db'} or http://HOST:5000 "
                             "(or pass the folder as --results-dir)")
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    if scheme not in _TRACKING_SCHEMES:
        raise PreflightError(f"{label} {uri!r}: unknown scheme {parts.scheme!r}; expected one of "
                             f"{', '.join(_TRACKING_SCHEMES)}")
    if scheme == "sqlite" and uri.startswith("sqlite:///") and len(uri) > len("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if db.is_dir():
            raise PreflightError(f"{label} {uri}: {db} is a folder; expected a SQLite file such as {db / 'mlflow.db'}")
        check_writable_dir(db.parent, label)
    elif scheme == "file":
        check_writable_dir(Path(parts.path), label)
    elif scheme in ("http", "https"):
        _probe(parts.hostname or "", parts.port or (443 if scheme == "https" else 80),
               f"{label} {uri}: the MLflow tracking server is unreachable", "start it or pass another --tracking-uri")


def local_store_missing(uri: str) -> Path | None:
    """The SQLite file of a local store that does not exist yet (reading it would create it), else None."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return None if db.exists() else db
    return None


def check_resume_state(name: str, storage: str | None, results_dir: Path) -> None:
    """A search to resume has its Tune state (tuner.pkl) in local storage; remote storage is Tune's to judge."""
    if storage and "://" in storage and not storage.startswith("file://"):
        return
    if storage and storage.startswith("file://"):
        storage = urlsplit(storage).path
    folder = Path(storage) if storage else results_dir / "ray"
    state = folder.expanduser() / name / "tuner.pkl"
    if not state.is_file():
        raise PreflightError(f"--resume {name}: no Tune state at {state}; nothing to resume (same --results-dir "
                             "and --storage as the interrupted search?)")


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
        raise PreflightError(f"--storage {storage!r}: unknown scheme {parts.scheme!r}; expected a folder, "
                             f"{', '.join(s + '://' for s in (*_REMOTE_STORAGE, *_OTHER_STORAGE))}")
    if not parts.netloc:
        raise PreflightError(f"--storage {storage!r}: no bucket; expected {parts.scheme}://BUCKET/PREFIX")
    host, port = _REMOTE_STORAGE[parts.scheme]
    endpoint = (parse_qs(parts.query).get("endpoint_override") or [None])[0]
    if parts.scheme == "s3":
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        host, port = split.hostname or host, split.port or (443 if split.scheme == "https" else 80)
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
        raise PreflightError(f"--address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
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
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc) or type(exc).__name__)
        raise PreflightError(f"{failure} ({reason}); {hint}") from None


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


# --- the spec (imports torch through the Recipe's validation) --------------------------------------
def check_data_flags(args: argparse.Namespace) -> None:
    """The recipe-level data flags, labelled as flags (not as `fixed:` spec fields)."""
    from ganmix.search.recipe import Recipe, RecipeError

    from ganmix.models.sizes import ImageSizeError, check_image_size

    if args.image_size is not None:  # its range here; against the spec's families in the spec's Recipe
        try:
            check_image_size(args.image_size, label=_flag("image_size"))
        except ImageSizeError as exc:
            raise PreflightError(str(exc)) from None
    # --seed becomes every seed of a trial (SearchSpec.base_recipe); the Recipe judges it as data_seed.
    for field, recipe_field in (("train_per_class", "train_per_class"), ("seed", "data_seed")):
        value = getattr(args, field)
        if value is None:
            continue
        try:
            Recipe(**{recipe_field: value})
        except RecipeError as exc:
            raise PreflightError(f"{_flag(field)}: {str(exc).replace(recipe_field, field)}") from None


def check_spec(spec: SearchSpec, *, sample_metrics: bool = True) -> None:
    """Everything in the spec that a trial would otherwise find out only at run time."""
    if spec.name is not None:
        check_name(spec.name)
    from ganmix.search.recipe import GAN_FIELDS, REAL_ONLY, is_real_only

    base = spec.base_recipe()
    for field, dim in spec.space.items():
        if is_real_only(base.generator) and "generator" not in spec.space and field in GAN_FIELDS:
            continue  # a fixed real-only search never draws them
        for what, value in _probe_values(dim):
            # A real-only choice comes with its constants, as the define-by-run space sets them.
            extra = REAL_ONLY if field == "generator" and is_real_only(value) else {}
            _try_recipe(f"space.{field}", what, value, base, {field: value, **extra})
    from ganmix.models.generator import list_generators

    for family, options in spec.generator_space.items():
        if family not in list_generators():
            raise SpaceError(f"generator_space.{family}: unknown generator family; expected some of "
                             f"{list_generators()}")
        for option, dim in options.items():
            for what, value in _probe_values(dim):
                _try_recipe(f"generator_space.{family}.{option}", what, value, base,
                            {"generator": family, "generator_options": {option: value}})
    if spec.constraints and not sample_metrics:
        raise PreflightError(f"constraints on {sorted(spec.constraints)} need sample metrics; drop "
                             "--no-sample-metrics or the constraints")


def _probe_values(dim: Dim) -> Iterable[tuple[str, Any]]:
    """Values that stand for the whole dimension: both ends of a range (the recipe's ranges are intervals)."""
    if isinstance(dim, CategoricalDim):
        return [("choice", value) for value in dim.choices]
    assert isinstance(dim, (IntDim, FloatDim))
    return [("low", dim.low), ("high", dim.high)]


def _try_recipe(label: str, what: str, value: Any, base: Any, changes: dict[str, Any]) -> None:
    from ganmix.search.recipe import RecipeError

    try:
        base.replace(**changes)
    except RecipeError as exc:
        raise SpaceError(f"{label}: {what} {value!r} is not a valid value ({exc})") from None


_LOCAL_HINT = "lower it, or join a larger cluster with --address"


def check_local_resources(spec: SearchSpec) -> None:
    """Without --address a trial must fit this machine, or Tune waits for it forever."""
    _check_fits(cpus_per_trial=spec.cpus_per_trial, gpus_per_trial=spec.gpus_per_trial, cpus=local_cpus(),
                gpus=local_gpus(), where="this machine", hint=_LOCAL_HINT)


def local_cpus() -> int:
    """The CPUs this process may use (what Ray counts in a container, too)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def local_gpus() -> int:
    """NVIDIA GPUs visible here, without importing torch: /dev/nvidiaN, narrowed by CUDA_VISIBLE_DEVICES."""
    devices = [p for p in Path("/dev").glob("nvidia*") if p.name[len("nvidia"):].isdigit()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(devices)
    return min(len(devices), len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))


def check_cluster_resources(spec: SearchSpec, address: str) -> None:
    """After ray.init(address): one trial must fit some alive node, or a node type the cluster's autoscaler
    may start (cluster.yaml starts GPU workers on demand); otherwise Tune would wait for it forever."""
    import ray

    from ganmix.search.ray_internals import launchable_node_types

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")] + launchable_node_types()
    need = {"CPU": spec.cpus_per_trial, "GPU": spec.gpus_per_trial}
    if any(all(node.get(key, 0.0) >= amount for key, amount in need.items()) for node in nodes):
        return
    have = ", ".join(sorted({f"{n.get('CPU', 0):g} CPUs/{n.get('GPU', 0):g} GPUs" for n in nodes})) or "none"
    raise PreflightError(f"cpus_per_trial = {spec.cpus_per_trial:g} and gpus_per_trial = {spec.gpus_per_trial:g}: "
                         f"no node of the Ray cluster at {address} (nor one its autoscaler may start) has that "
                         f"much (nodes: {have}); lower them, add a node that has them, or wait until the "
                         "cluster's workers have joined (`ray status`)")


def _check_fits(*, cpus_per_trial: float, gpus_per_trial: float, cpus: float, gpus: float, where: str,
                hint: str) -> None:
    if cpus_per_trial > cpus:
        raise PreflightError(f"cpus_per_trial = {cpus_per_trial:g} is more than the {cpus:g} CPU(s) of "
                             f"{where}; {hint}")
    if gpus_per_trial > 0 and gpus == 0:
        raise PreflightError(f"gpus_per_trial = {gpus_per_trial:g} but {where} has no GPU; use "
                             "--gpus-per-trial 0, or join a cluster with GPUs (--address)")
    if gpus_per_trial > gpus:
        raise PreflightError(f"gpus_per_trial = {gpus_per_trial:g} is more than the {gpus:g} GPU(s) of "
                             f"{where}; {hint}")


# --- the data set ------------------------------------------------------------------------------------
def load_search_data(spec: SearchSpec, data_dir: Path | None) -> ImageDataset:
    """The searched data set, scarcity applied, with non-empty splits (a near-empty class warns). Loaded the
    way every recipe of the search loads it (its data_seed), so `ganmix train` sees the same data."""
    from ganmix.datasets import DatasetError
    from ganmix.search.pipeline import load_recipe_data

    dataset = load_recipe_data(spec.base_recipe(), data_dir)
    for split, images in dataset.splits().items():
        if len(images) == 0:
            raise DatasetError(f"data set {spec.dataset!r}: the {split} split is empty; expected at least one "
                               f"image in each of train, val and test")
    counts = dataset.train.class_counts(dataset.num_classes)
    few = [f"{name!r} ({count})" for name, count in zip(dataset.class_names, counts) if count < 2]
    if few:
        print(f"ganmix: warning: data set {spec.dataset!r}: class(es) {', '.join(few)} have fewer than 2 train "
              "images; their generator and metrics will be unreliable", file=sys.stderr, flush=True)
    return dataset
