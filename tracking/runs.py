"""MLflow runs: one parent run per search, one nested child run per trial, logged from where it runs."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag

from ganmix.models.metrics import internal_name, logged_name
from ganmix.tracking.held import uninterrupted
from ganmix.tracking.store import TrackingError, client, is_local_store, retry

log = logging.getLogger(__name__)

# Tags that tie runs together; queries in tracking/query.py rely on them.
KIND, SEARCH_NAME, TRIAL_ID = "ganmix.kind", "ganmix.search", "ganmix.trial_id"
PARENT = "mlflow.parentRunId"
COMPLETED, BASELINE, EARLY_STOPPED = "ganmix.completed", "ganmix.baseline", "ganmix.early_stopped"
METRIC, MODE, FINGERPRINT, ERROR = "ganmix.metric", "ganmix.mode", "ganmix.fingerprint", "ganmix.error"
# "false" on a failed trial run whose error a rerun would only repeat (a diverged generator, a bad option).
RETRYABLE = "ganmix.retryable"
FEASIBLE = "ganmix.feasible"  # false when a trial breaks a sample-metric constraint
# On a run of a positive control (`holdout`: held-out real images instead of a generator): the control's name.
CONTROL = "ganmix.control"
DEVICE = "ganmix.device"  # on a trial run: where it trained, "cpu" or "cuda"
STOPPED_BY = "ganmix.stopped_by"  # on a search's parent run: "time_budget" when --time-budget ended it
# On a search's parent run: the best trial so far and its value (kept current), the best run when it ended.
BEST_TRIAL, BEST_VALUE, BEST_RUN_ID = "ganmix.best_trial", "ganmix.best_value", "ganmix.best_run_id"
NODE, TUNE_TRIAL = "ganmix.node", "ganmix.tune_trial"  # on a trial run: the Ray node it ran on, Tune's trial name
DATA_DIR = "ganmix.data_dir"  # on a search's parent run: the --data-dir it read (`ganmix confirm` reads the same)
SAMPLE_METRICS = "ganmix.sample_metrics"  # on a search's parent run: "false" with --no-sample-metrics (resume keeps it)
NOTE = "mlflow.note.content"  # a run's or an experiment's description in the MLflow UI


class RunLogger:
    """Logs to one MLflow run through MlflowClient (no global active-run state, safe in any process).

    Every call retries transient errors; what still fails is buffered and replayed before the next
    call and at `finish`, so a short tracking-server outage loses nothing. Safe from several threads (a
    search's parent run is written by Tune's loop and by the driver's tracking writer): one call at a time,
    in the order they came.
    """

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri, self.run_id = uri, run_id
        self._client = client(uri)
        self._local = is_local_store(uri)  # its calls are not cut in half by a stop signal (tracking/held.py)
        self._pending: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.RLock()  # re-entrant: a flush inside a logging call of the same thread

    def __getstate__(self) -> dict[str, str]:
        # Tune pickles its callbacks (and the loggers they hold) into the experiment state: a copy starts
        # with its own client and nothing pending; the live logger keeps what it buffered.
        return {"uri": self.uri, "run_id": self.run_id}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["uri"], state["run_id"])  # type: ignore[misc]

    # --- the buffered core ------------------------------------------------------------------------
    def _do(self, what: str, call: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append((what, call))
            self.flush(seconds=None)

    def flush(self, *, seconds: float | None = None, strict: bool = False) -> None:
        # Under the lock: two threads flushing at once ran the same call twice and popped a list emptied by
        # the other (an IndexError out of Tune's callback, and a trial run closed as KILLED and run again).
        with self._lock:
            while self._pending:
                what, call = self._pending[0]

                def attempt(call: Callable[[], None] = call) -> None:
                    # One attempt (not the waits between retries) in one piece; the pop inside it, so that a
                    # held interrupt comes after the call has left the queue.
                    with uninterrupted() if self._local else contextlib.nullcontext():
                        call()
                        self._pending.pop(0)

                try:
                    retry(attempt, seconds=seconds)
                except Exception as exc:
                    if strict:
                        raise TrackingError(f"could not log {what} to run {self.run_id} at {self.uri}: {exc}") from exc
                    log.warning("buffering %s for run %s: %s", what, self.run_id, exc)
                    return

    # --- what trials and searches log --------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow caps params per batch
            chunk = items[i:i + 100]
            self._do("params", lambda c=chunk: self._client.log_batch(self.run_id, params=c, synchronous=True))

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(logged_name(k), float(v), now, step) for k, v in metrics.items()]
        self._do(f"metrics at step {step}", lambda: self._client.log_batch(self.run_id, metrics=batch, synchronous=True))

    def log_metric_steps(self, steps: Sequence[tuple[int, Mapping[str, float], int]]) -> None:
        """Metrics of many (step, metrics, timestamp ms) in as few calls as MLflow allows (1000 per batch)."""
        batch = [Metric(logged_name(k), float(v), stamp, step)
                 for step, metrics, stamp in steps for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            chunk = batch[i:i + 1000]
            self._do(f"metrics of {len(steps)} steps",
                     lambda c=chunk: self._client.log_batch(self.run_id, metrics=c, synchronous=True))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self._do("tags", lambda: self._client.log_batch(self.run_id, tags=batch, synchronous=True))

    def delete_tag(self, key: str) -> None:
        self._do(f"deleting tag {key}", lambda: self._client.delete_tag(self.run_id, key))

    def log_text(self, text: str, artifact_file: str) -> None:
        self.log_bytes(text.encode(), artifact_file)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Write to a temp file and upload it; the copy on disk lets a buffered upload be replayed,
        and is deleted once uploaded (a search would otherwise leave every checkpoint in /tmp)."""
        scratch = Path(tempfile.mkdtemp(prefix="ganmix-artifact-"))
        tmp = scratch / Path(artifact_file).name
        tmp.write_bytes(data)
        folder = str(Path(artifact_file).parent) if Path(artifact_file).parent != Path(".") else None

        def upload() -> None:
            self._client.log_artifact(self.run_id, str(tmp), folder)
            shutil.rmtree(scratch, ignore_errors=True)

        self._do(artifact_file, upload)

    def log_npz(self, artifact_file: str, **arrays: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        self.log_bytes(buffer.getvalue(), artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """A matplotlib figure, rendered now (the caller may close it) and uploaded like any artifact."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format=Path(artifact_file).suffix.lstrip(".") or "png")
        self.log_bytes(buffer.getvalue(), artifact_file)

    def log_image(self, image: Any, artifact_file: str, *, key: str | None = None) -> None:
        """A PIL image or uint8 array through MLflow's log_image: at a stable artifact path (Artifacts tab)
        and, with `key`, as a tracked image too, which the Chart view shows run beside run."""
        self._do(artifact_file, lambda: self._client.log_image(self.run_id, image, artifact_file=artifact_file))
        if key is not None:
            self._do(f"image {key}", lambda: self._client.log_image(self.run_id, image, key=key, step=0,
                                                                    synchronous=True))

    def log_table(self, data: Mapping[str, Sequence[Any]], artifact_file: str) -> None:
        columns = {k: list(v) for k, v in data.items()}
        self._do(artifact_file, lambda: self._client.log_table(self.run_id, data=columns, artifact_file=artifact_file))

    def log_datasets(self, sets: Mapping[str, tuple[np.ndarray, np.ndarray]], *, name: str) -> None:
        """Image sets (images, labels) as MLflow dataset inputs, keyed by their role (train, val, test,
        synthetic): they fill the runs table's Dataset column and the run's Datasets section."""
        from ganmix.tracking.inputs import dataset_inputs

        inputs = dataset_inputs(sets, name=name)
        self._do("dataset inputs", lambda: self._client.log_inputs(self.run_id, datasets=inputs))

    def finish(self, status: str = "FINISHED", *, error: str | None = None) -> None:
        if error:
            self.set_tags({ERROR: error[:5000]})
        self._do("status", lambda: self._client.set_terminated(self.run_id, status=status))
        self.flush(seconds=300, strict=True)


def read_metrics(run: Any) -> dict[str, float]:
    """A run's latest metrics under ganmix's own names (`val_auc`), whatever section MLflow shows them in."""
    return {internal_name(k): v for k, v in run.data.metrics.items()}


def metric_history(uri: str, run_id: str, name: str) -> list[Any]:
    """Every logged value of metric `name` (ganmix's own name) of one run."""
    return list(retry(client(uri).get_metric_history, run_id, logged_name(name)))


def get_run(uri: str, run_id: str) -> Any:
    return retry(client(uri).get_run, run_id)


def download_artifact(uri: str, run_id: str, artifact_path: str, folder: str) -> Path:
    """One artifact of a run, downloaded into `folder`; returns its local path."""
    return Path(retry(client(uri).download_artifacts, run_id, artifact_path, folder))


def reopen_run(uri: str, run_id: str) -> RunLogger:
    """A closed run running again (a resumed search's parent): RUNNING, its old error tag gone."""
    mlflow_client = client(uri)
    run = retry(mlflow_client.get_run, run_id)
    retry(mlflow_client.update_run, run_id, status="RUNNING")
    if ERROR in run.data.tags:  # e.g. "interrupted; continue it with --resume": no longer true
        retry(mlflow_client.delete_tag, run_id, ERROR)
    return RunLogger(uri, run_id)


def start_run(
    uri: str, experiment_id: str, *, name: str, tags: Mapping[str, Any], parent_run_id: str | None = None
) -> RunLogger:
    all_tags = {k: str(v) for k, v in tags.items()}
    if parent_run_id:
        all_tags[PARENT] = parent_run_id  # nests the run under its search in the MLflow UI
    run = retry(client(uri).create_run, experiment_id, tags=all_tags, run_name=name)
    return RunLogger(uri, run.info.run_id)


def child_runs(uri: str, experiment_id: str, parent_run_id: str, *, extra_filter: str = "") -> list[Any]:
    query = f"tags.`{PARENT}` = '{parent_run_id}'" + (f" AND {extra_filter}" if extra_filter else "")
    return list(retry(client(uri).search_runs, [experiment_id], query, max_results=10_000))


def close_running_children(
    uri: str, experiment_id: str, parent_run_id: str, *, status: str, reason: str, trial_id: str | None = None
) -> int:
    """Terminate children still RUNNING (a lost worker, an interrupted driver); returns how many."""
    extra = "attributes.status = 'RUNNING'" + (f" AND tags.`{TRIAL_ID}` = '{trial_id}'" if trial_id else "")
    closed = 0
    for run in child_runs(uri, experiment_id, parent_run_id, extra_filter=extra):
        logger = RunLogger(uri, run.info.run_id)
        logger.finish(status, error=reason)
        closed += 1
    return closed


def mark_early_stopped(uri: str, run_id: str) -> None:
    """A trial the scheduler stopped is a finished run with fewer epochs, not a failure."""
    logger = RunLogger(uri, run_id)
    logger.set_tags({EARLY_STOPPED: "true"})
    logger.finish(RunStatus.to_string(RunStatus.FINISHED))


class EventWriter:
    """One background thread that applies a search driver's tracking events in the order they came, so the
    scheduler (Tune's callbacks) never waits for MLflow.

    Each event is a named handler's keyword arguments (JSON values). It is appended to a journal file before
    it is queued and acknowledged there once applied: a driver killed before the writer caught up (SIGKILL,
    a second Ctrl-C) leaves the rest in the journal, and `replay()` applies it on resume. Transient errors are
    retried until applied; `flush()` waits for everything queued, and an exiting interpreter flushes too.
    """

    def __init__(self, journal: Path | None, handlers: Mapping[str, Callable[..., None]]) -> None:
        import atexit
        import queue
        import threading

        self.journal, self.handlers = journal, dict(handlers)
        self._queue: queue.Queue[tuple[int, str, dict[str, Any]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._seq = 0
        self._closed = False
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True)
            self._seq = max((entry.get("seq", entry.get("ack", 0)) for entry in _journal_entries(journal)), default=0)
        self._thread = threading.Thread(target=self._work, name="ganmix-tracking-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("an EventWriter stays in the process that made it")

    def replay(self) -> int:
        """Queue the journal's events that were never acknowledged (a killed driver's); returns how many."""
        if self.journal is None:
            return 0
        entries = list(_journal_entries(self.journal))
        done = {entry["ack"] for entry in entries if "ack" in entry}
        pending = [entry for entry in entries if "seq" in entry and entry["seq"] not in done]
        for entry in pending:
            self._queue.put((entry["seq"], entry["op"], entry["args"]))
        return len(pending)

    def submit(self, op: str, **args: Any) -> None:
        if op not in self.handlers:
            raise KeyError(f"no handler for tracking event {op!r}")
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._append({"seq": seq, "op": op, "args": args})
            self._queue.put((seq, op, args))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is applied; False when `timeout` seconds passed first."""
        import time as _time

        deadline = None if timeout is None else _time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and _time.monotonic() >= deadline:
                return False
            _time.sleep(0.02)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Apply what is queued, then stop the thread (idempotent)."""
        if self._closed:
            return
        self.flush(timeout if timeout is not None else RETRY_SECONDS_FOR_CLOSE)
        self._closed = True
        self._queue.put(None)

    def _append(self, entry: dict[str, Any]) -> None:
        if self.journal is None:
            return
        import json

        # One write() per line: a killed process leaves whole lines (the OS keeps what was written).
        with open(self.journal, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            seq, op, args = item
            try:
                self._apply(op, args)
                with self._lock:
                    self._append({"ack": seq})
            finally:
                self._queue.task_done()

    def _apply(self, op: str, args: dict[str, Any]) -> None:
        from ganmix.tracking.store import _transient

        delay = 0.5
        while True:
            try:
                self.handlers[op](**args)
                return
            except Exception as exc:  # noqa: BLE001 - MLflow wraps HTTP, SQL and OS errors in many types
                if not _transient(exc):  # a rerun would fail the same way: say so, and go on with the rest
                    log.exception("tracking event %s %s failed", op, args)
                    return
                log.warning("tracking event %s failed (%s); retrying in %.1fs", op, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)


# How long an exiting driver waits for its writer to catch up (the journal keeps the rest for a resume).
RETRY_SECONDS_FOR_CLOSE = 300.0


def _journal_entries(journal: Path) -> Any:
    import json

    if not journal.is_file():
        return
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            yield json.loads(line)
        except ValueError:  # a line cut short by a kill: its event was never queued either
            continue
