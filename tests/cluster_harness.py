"""Loopback stand-ins for the AWS cluster of cluster.yaml, built from real processes.

`MlflowServer` runs a real `mlflow server` subprocess (SQLite store, proxied artifacts,
like the head node's) and `local_ray_cluster` starts a head raylet with no CPUs plus
worker raylets, so tasks and trials can only run on "worker nodes", as on the cluster.
Everything binds to 127.0.0.1; nothing here talks to another host.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import ray
from _ports import free_port
from ray.cluster_utils import Cluster

LOOPBACK = "127.0.0.1"
T = TypeVar("T")
_LOG_TAIL_CHARS = 3000


class MlflowServerError(RuntimeError):
    """The MLflow server did not come up; the message carries the tail of its log."""


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with its own SQLite store and artifact folder.

    Use it as a context manager, or call `start()` / `stop()`. `restart()` keeps the port,
    the store and the artifacts, so a client holding `.uri` sees the same runs afterwards.
    """

    def __init__(self, *, root: Path, port: int | None = None, startup_timeout_s: float = 60.0) -> None:
        if startup_timeout_s <= 0:
            raise ValueError(f"startup_timeout_s must be > 0, got {startup_timeout_s!r}")
        self.root = Path(root)
        self.port = free_port() if port is None else port
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def store_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The server command line; the same flags as the head node's, on loopback."""
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.store_uri,
            "--serve-artifacts", "--artifacts-destination", str(self.artifacts_dir),
            "--host", LOOPBACK, "--port", str(self.port),
            # One worker process: the test machines have two cores to share with Ray.
            "--workers", "1",
        ]  # fmt: skip

    def start(self, *, wait: bool = True) -> MlflowServer:
        """Spawn the server; with `wait`, block until `GET /health` answers.

        `wait=False` lets a caller boot other processes (a Ray cluster) meanwhile and call
        `wait_until_healthy()` later: both start-ups are mostly import time.
        """
        if self.running:
            raise MlflowServerError(f"MLflow server at {self.uri} is already running")
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        # The GenAI job runner is a third process the tests never use: skip it to spare CPU.
        # Telemetry would only try to reach the internet from a loopback-only test.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        with self.log_path.open("ab") as log:
            # Own session, so stop() can end the server and any workers it forks, and nothing else.
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=env, start_new_session=True
            )
        if wait:
            self.wait_until_healthy()
        return self

    def stop(self, *, graceful: bool = True, timeout_s: float = 15.0) -> None:
        """End the server; `graceful=False` sends SIGKILL at once, like a crashed head process."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=timeout_s)

    def restart(self) -> MlflowServer:
        """Stop and start again on the same port with the same store and artifacts."""
        self.stop()
        return self.start()

    def log_tail(self) -> str:
        if not self.log_path.is_file():
            return "<no server log>"
        return self.log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]

    def wait_until_healthy(self) -> None:
        """Block until `GET /health` answers; raise MlflowServerError (with the log tail) on exit or timeout."""
        if self._proc is None:
            raise MlflowServerError(f"MLflow server on port {self.port} was never started; call start() first")
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise MlflowServerError(
                    f"MLflow server on port {self.port} exited with code {code} before "
                    f"{self.uri}/health answered; log tail:\n{self.log_tail()}"
                )
            if _health_ok(self.uri):
                return
            time.sleep(0.25)
        self.stop(graceful=False)
        raise MlflowServerError(
            f"MLflow server did not answer {self.uri}/health within {self.startup_timeout_s:.0f} s; "
            f"log tail:\n{self.log_tail()}"
        )

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _health_ok(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError):
        return False  # not up yet, or (if it never comes up) the server's exit says why


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # already gone


@contextlib.contextmanager
def local_ray_cluster(
    num_workers: int = 2, cpus_per_worker: int = 1, *, include_dashboard: bool = False
) -> Iterator[Cluster]:
    """A head raylet with 0 CPUs plus `num_workers` worker raylets, with this process connected.

    Yields the `ray.cluster_utils.Cluster`, so a test can kill a worker with
    `cluster.remove_node(node)` (worker nodes are in `cluster.worker_nodes`). The dashboard
    is off by default because it costs seconds of start-up on two cores.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1 (tasks cannot run on the 0-CPU head), got {num_workers!r}")
    if cpus_per_worker < 1:
        raise ValueError(f"cpus_per_worker must be >= 1, got {cpus_per_worker!r}")
    if ray.is_initialized():
        # The session's local Ray (tests/conftest.py ray_session): a cluster needs this process to itself. A
        # later in-process test starts a local Ray again (runner.start_ray) when it finds none.
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": include_dashboard})
    try:
        for _ in range(num_workers):
            cluster.add_node(num_cpus=cpus_per_worker)
        cluster.wait_for_nodes()
        cluster.connect()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def head_node_id(cluster: Cluster) -> str:
    """Hex id of the head node, comparable with `ray.get_runtime_context().get_node_id()`."""
    if cluster.head_node is None:
        raise RuntimeError("the cluster has no head node (it was removed or never started)")
    return str(cluster.head_node.node_id)


def worker_node_ids(cluster: Cluster) -> set[str]:
    """Hex ids of the worker nodes still in the cluster."""
    return {str(node.node_id) for node in cluster.worker_nodes}


@contextlib.contextmanager
def mlflow_and_ray(
    root: Path, *, num_workers: int = 2, cpus_per_worker: int = 1
) -> Iterator[tuple[MlflowServer, Cluster]]:
    """An MLflow server under `root` and a local Ray cluster, booted side by side to save time."""
    server = MlflowServer(root=root).start(wait=False)
    try:
        with local_ray_cluster(num_workers, cpus_per_worker) as cluster:
            server.wait_until_healthy()
            yield server, cluster
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """Module-wide 0-CPU head + two 1-CPU workers (import this fixture into a test module)."""
    with local_ray_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """Module-wide MLflow server under a fresh temp folder (import this fixture into a test module)."""
    with MlflowServer(root=tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


# --- `ganmix search` as its own driver process, and reading a search back from MLflow --------------

# A search small enough for two 1-CPU workers: digits, 3 classifier epochs, 1-2 GAN epochs.
SMALL_SEARCH: dict[str, object] = {
    "dataset": "digits",
    "trials": 4,
    "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
    "max_concurrent": 2,
    "seed": 0,
    "space": {
        "generator_epochs": {"type": "int", "low": 1, "high": 2},
        "synthetic_ratio": {"type": "float", "low": 0.2, "high": 1.0},
        "generator": ["dcgan", "cvae"],
    },
    "fixed": {"classifier_epochs": 3, "classifier_min_steps": 0, "latent_dim": 16, "augment": "none"},
}


def write_search_spec(path: Path, **changes: object) -> Path:
    """SMALL_SEARCH with top-level keys replaced by `changes`, written as YAML to `path`."""
    import yaml

    path.write_text(yaml.safe_dump({**SMALL_SEARCH, **changes}, sort_keys=False))
    return path


def search_command(*args: str) -> list[str]:
    """`ganmix search ARGS...` run by this interpreter (no console script needed)."""
    return [sys.executable, "-m", "ganmix.search.cli", "search", *args]


class SearchProcess:
    """A `ganmix search` driver in its own process group, its output in a log file."""

    def __init__(self, args: list[str], *, log_path: Path, cwd: Path | None = None) -> None:
        self.args, self.log_path = list(args), Path(log_path)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                search_command(*args), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                start_new_session=True,
            )

    def wait(self, timeout_s: float) -> int:
        """The exit code; on timeout the driver is killed and the test fails with its output."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"`ganmix search {' '.join(self.args)}` ran past {timeout_s:.0f} s; output tail:\n"
                        f"{self.output()[-_LOG_TAIL_CHARS:]}")

    def interrupt(self) -> None:
        """Ctrl+C: SIGINT to the driver's process group."""
        _signal_group(self.proc, signal.SIGINT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait(timeout=30)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def __enter__(self) -> SearchProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()  # never leave a driver behind a failed test


def run_search_cli(
    args: list[str], *, log_path: Path, timeout_s: float = 240.0, cwd: Path | None = None
) -> tuple[int, str]:
    """Run `ganmix search ARGS` to the end; (exit code, combined output)."""
    with SearchProcess(args, log_path=log_path, cwd=cwd) as search:
        code = search.wait(timeout_s)
        return code, search.output()


def tune_summary(output: str) -> tuple[int, int]:
    """(trials, failed) from the CLI's closing line `search NAME: N trials, M failed`."""
    import re

    found = re.findall(r"^search \S+: (\d+) trials, (\d+) failed$", output, flags=re.MULTILINE)
    if not found:
        pytest.fail(f"no 'search NAME: N trials, M failed' line in the output:\n{output[-_LOG_TAIL_CHARS:]}")
    trials, failed = found[-1]
    return int(trials), int(failed)


def wait_until(predicate: Callable[[], T | None], *, timeout_s: float, what: str, interval_s: float = 0.5) -> T:
    """Poll `predicate` until it returns something truthy; fail the test naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def search_runs(uri: str, name: str) -> tuple[object, list[object]]:
    """The parent run of search `name` and all its child runs (any status), oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, f"tags.`ganmix.kind` = 'search' AND tags.`ganmix.search` = '{name}'")
    assert len(parents) == 1, f"expected one parent run for search {name!r}, found {len(parents)}"
    parent = parents[0]
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        max_results=1000, order_by=["attributes.start_time ASC"],
    )
    return parent, list(children)


def child_runs_now(uri: str, name: str) -> list[object]:
    """Child runs of search `name`, or [] while its parent run does not exist yet."""
    try:
        return search_runs(uri, name)[1]
    except Exception:  # the parent is not created yet, or the server is restarting
        return []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MlflowServer, Cluster]]:
    """Module-wide MLflow server + local Ray cluster, started together (import into a test module)."""
    with mlflow_and_ray(tmp_path_factory.mktemp("stack")) as pair:
        yield pair
