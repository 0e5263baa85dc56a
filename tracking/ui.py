"""`ganmix ui`: MLflow's server over a local store, one worker, opened at the runs table in Model training mode.

The server runs as a child in its own process group: a terminal's Ctrl-C reaches only ganmix, which stops
the whole group (MLflow's CLI, uvicorn) quietly; its log is kept, and shown only when it fails to start.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from importlib.metadata import entry_points

from ganmix.tracking.location import TrackingError, local_store_missing

# Light on purpose (MLflow is imported inside the functions that need it): a taken port is one line before
# MLflow's seconds of imports.

APP = "ganmix"  # our `mlflow.app` entry point: tracking/ui_app.py
# One worker is plenty for one user; uvicorn's default of 4 on 2 busy cores missed MLflow's start-up checks
# for minutes. Short graceful-shutdown and keep-alive timeouts: Ctrl-C does not wait on an open browser tab.
UVICORN_OPTS = "--timeout-graceful-shutdown 3 --timeout-keep-alive 5"
STOP_SECONDS = 10.0  # after SIGTERM, how long the server gets before SIGKILL
READY, BUSY = "uvicorn running on", "address already in use"  # uvicorn's log lines, lower-cased


def runs_link(base_url: str, experiment_id: str, *, shared_view: bool = False) -> str:
    """The runs table in MLflow 3's model-training view (not its GenAI traces page); with `shared_view`,
    showing the columns the latest search chose (tracking.describe.share_view)."""
    from ganmix.tracking.describe import VIEW_KEY

    view = f"&viewStateShareKey={VIEW_KEY}" if shared_view else ""
    return f"{base_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning{view}"


def check_port(host: str, port: int) -> None:
    """Fail with one line before starting the server when it could not listen (the CLI's pre-flight has
    checked the port's range already). A server that takes the port in between is caught from the log."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise TrackingError(_busy(host, port, exc.strerror or str(exc))) from None


def _busy(host: str, port: int, why: str) -> str:
    return f"cannot serve the MLflow UI on {host}:{port}: {why}; pick another --port"


def ganmix_experiments(uri: str) -> list[tuple[str, str, bool]]:
    """(name, id, has ganmix's shared view) of the ganmix experiments in a store, newest activity first;
    none for a missing store. Experiments from before the kind tag get it now."""
    if local_store_missing(uri):
        return []
    from ganmix.tracking.describe import SHARED_VIEW
    from ganmix.tracking.store import EXPERIMENT_KIND, MODEL_TRAINING_KIND, client, retry

    mlflow_client = client(uri)
    found = [e for e in retry(mlflow_client.search_experiments, order_by=["last_update_time DESC"])
             if e.name.startswith("ganmix/")]
    for experiment in found:
        if experiment.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING_KIND:
            # Best effort (a read-only store is still served): the mode itself comes from tracking/ui_app.py.
            with contextlib.suppress(Exception):
                mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING_KIND)
    return [(e.name, e.experiment_id, SHARED_VIEW in e.tags) for e in found]


def server_command(uri: str, host: str, port: int) -> list[str]:
    if not any(e.name == APP for e in entry_points(group="mlflow.app")):
        raise TrackingError(f"ganmix's MLflow app (entry point mlflow.app:{APP}) is not installed: reinstall "
                            "ganmix (pip install -e .)")
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host,
            "--port", str(port), "--workers", "1", "--app-name", APP, "--uvicorn-opts", UVICORN_OPTS]


class _Log:
    """The server's output, read by a thread: the last lines, and whether it said it listens or cannot."""

    def __init__(self, stream: object) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=40)
        self.ready, self.busy = threading.Event(), threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip())
            low = line.lower()
            if READY in low:
                self.ready.set()
            if BUSY in low:
                self.busy.set()

    def tail(self) -> str:
        return next((line for line in reversed(self.lines) if line.strip()), "no output")


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the server's process group, SIGKILL after STOP_SECONDS; a second Ctrl-C meanwhile is ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        signal.signal(signal.SIGINT, previous)


def serve(uri: str, *, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Start the server, say where it listens once it answers, run until Ctrl-C or SIGTERM; 0 then."""
    check_port(host, port)
    base = f"http://{host}:{port}"
    experiments = ganmix_experiments(uri)
    command = server_command(uri, host, port)
    # No background jobs (GenAI judges): nothing in a ganmix store uses them, and they cost a process.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        log = _Log(proc.stdout)
        _wait_ready(proc, log, base, host, port)
        print(f"MLflow UI at {base} over {uri} (Ctrl-C stops it)")
        for name, experiment_id, shared in experiments:
            print(f"  {name}: {runs_link(base, experiment_id, shared_view=shared)}")
        if not experiments:
            print("  no ganmix searches in this store yet (run `ganmix search`)")
        sys.stdout.flush()
        while proc.poll() is None:
            time.sleep(0.5)
        raise TrackingError(f"the MLflow server stopped by itself (exit {proc.returncode}): {log.tail()}")
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _wait_ready(proc: subprocess.Popen[str], log: _Log, base: str, host: str, port: int) -> None:
    """Until the server has bound the port and answers its health check (no deadline: a loaded machine
    may take minutes to import MLflow); one line when it cannot bind or exits."""
    while True:
        if log.busy.is_set():
            raise TrackingError(_busy(host, port, "address already in use (another server took it)"))
        if proc.poll() is not None:
            time.sleep(0.2)  # the reader thread may still hold the last lines
            if log.busy.is_set():
                continue
            raise TrackingError(f"the MLflow server exited with {proc.returncode} before answering: {log.tail()} "
                                f"(command: {shlex.join(proc.args)})")  # type: ignore[arg-type]
        if log.ready.is_set() and _answers(base):
            return
        time.sleep(0.3)
