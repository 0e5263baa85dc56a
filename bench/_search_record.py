"""bench_search.py's helpers: `ganmix` run as a subprocess (its own process group, a timeout), small probes in a
fresh interpreter, and a finished search read back from its MLflow store (trials, slots, the wall-time split)."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import Rows


# --- running the CLI ---------------------------------------------------------------------------------------
@dataclass
class CliRun:
    argv: list[str]
    pid: int
    launched: float  # time.time() just before the process started
    seconds: float  # wall time until it exited
    returncode: int | None  # None: killed at the timeout
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def status(self) -> str:
        return "ok" if self.ok else "timed out" if self.returncode is None else f"exit {self.returncode}"

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def child_env(ray_address: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)  # runs must land in the temporary results folder
    env["PYTHONUNBUFFERED"] = "1"
    if ray_address is None:
        env["RAY_ADDRESS"] = "local"  # a fresh local Ray, never a cluster some other process runs here
    else:
        env.pop("RAY_ADDRESS", None)  # it would override --address
    return env


FAILED: list[str] = []  # CLI runs that did not exit 0; main() then exits 1


def run_cli(args: list[str], *, log: Path, env: dict[str, str], timeout: float) -> CliRun:
    """Run the ganmix CLI in its own process group; on timeout interrupt it (Ray shuts down), then kill it."""
    argv = [sys.executable, "-m", "ganmix.search.cli", *args]
    with log.open("w") as out:
        launched, start = time.time(), time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            returncode: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
            _stop_group(proc)
        seconds = time.perf_counter() - start
    if returncode != 0:
        FAILED.append(" ".join(args[:1]) + f" ({log.stem})")
    return CliRun(argv=argv, pid=proc.pid, launched=launched, seconds=seconds, returncode=returncode, log=log)


def _stop_group(proc: subprocess.Popen) -> None:
    """Only the process group this script created (start_new_session): the CLI and what it started."""
    for sig, grace in ((signal.SIGINT, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def probe(code: str, env: dict[str, str], timeout: float = 180) -> dict[str, float] | None:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if done.returncode == 0 and lines else None


# --- reading the runs back ---------------------------------------------------------------------------------
@dataclass
class Trial:
    name: str
    label: str  # "baseline" or the generator family
    generator_epochs: str
    synthetic_ratio: float
    state: str  # completed | stopped early | failed | ...
    start: float  # MLflow run start (the worker opened it), seconds since the epoch
    end: float | None
    wall: float | None  # trial_wall_seconds
    compute: float | None  # compute_seconds
    gan_requested: int = 0  # generator_epochs of a trial that trained (or reused) a generator
    gan_trained: int = 0  # epochs it trained itself; the rest came from the generator cache
    gap: float | None = None  # slot freed -> this run opened
    slot_overhead: float | None = None  # slot freed -> this run ended, minus compute

    @property
    def overhead(self) -> float | None:
        return None if self.wall is None or self.compute is None else self.wall - self.compute


@dataclass
class SearchRecord:
    parent_start: float | None
    parent_end: float | None
    trials: list[Trial]
    max_concurrent: int = 1

    def occupancy(self) -> tuple[float, float, float] | None:
        """(busy share of the slots, idle tail s, straggler s) from the trial runs' start and end times.

        Busy share: trial-run seconds / (first start -> last end) x max_concurrent. Idle tail: slot-seconds left
        free after the last trial started, in whole slots (what a straggler costs). Straggler: how long the
        last trial ran alone."""
        spans = [(t.start, t.end) for t in self.trials if t.end is not None]
        if not spans:
            return None
        first, last = min(s for s, _ in spans), max(e for _, e in spans)
        if last <= first:
            return None
        slots = self.max_concurrent
        busy = sum(e - s for s, e in spans) / ((last - first) * slots)
        last_start = max(s for s, _ in spans)
        free = sum(slots - sum(s <= t < e for s, e in spans) for t in _grid(last_start, last, 0.1)) * 0.1 / slots
        ends = sorted(e for _, e in spans)
        alone = ends[-1] - max(ends[-2], last_start) if len(ends) > 1 else 0.0
        return busy, max(free, 0.0), max(alone, 0.0)


def _grid(start: float, stop: float, step: float) -> list[float]:
    return [start + i * step for i in range(int((stop - start) / step))]


def read_search(results_dir: Path, max_concurrent: int) -> SearchRecord:
    import mlflow

    from ganmix.tracking.location import default_tracking_uri
    from ganmix.tracking.runs import read_metrics

    client = mlflow.MlflowClient(tracking_uri=default_tracking_uri(results_dir))
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, "tags.`ganmix.kind` = 'search'", max_results=10)
    runs = client.search_runs(experiments, "tags.`ganmix.kind` = 'trial'", max_results=1000)
    trials = []
    for run in runs:
        tags, params, metrics = run.data.tags, run.data.params, read_metrics(run)
        baseline = tags.get("ganmix.baseline") == "true"
        if run.info.status == "FAILED":
            state = "failed"
        elif tags.get("ganmix.completed") == "true":
            state = "completed"
        elif tags.get("ganmix.early_stopped") == "true":
            state = "stopped early"
        else:
            state = run.info.status.lower()
        trials.append(Trial(
            name=run.info.run_name, label="baseline" if baseline else params.get("generator", "?"),
            generator_epochs="-" if baseline else params.get("generator_epochs", "?"),
            synthetic_ratio=float(params.get("synthetic_ratio", "nan")),
            state=state, start=run.info.start_time / 1000,
            end=run.info.end_time / 1000 if run.info.end_time else None,
            wall=metrics.get("trial_wall_seconds"), compute=metrics.get("compute_seconds"),
            gan_requested=int(params.get("generator_epochs", 0)) if "generator_epochs_trained" in metrics else 0,
            gan_trained=int(metrics.get("generator_epochs_trained", 0)),
        ))
    trials.sort(key=lambda t: t.start)
    _fill_slots(trials, max_concurrent)
    parent = parents[0] if parents else None
    return SearchRecord(
        parent_start=parent.info.start_time / 1000 if parent else None,
        parent_end=parent.info.end_time / 1000 if parent and parent.info.end_time else None,
        trials=trials, max_concurrent=max_concurrent,
    )


def _fill_slots(trials: list[Trial], max_concurrent: int) -> None:
    """Trial i (by start, i >= max_concurrent) runs in the slot freed by the (i - max_concurrent + 1)-th end."""
    ends = sorted(t.end for t in trials if t.end is not None)
    for i, trial in enumerate(trials):
        j = i - max_concurrent
        if j < 0 or j >= len(ends) or ends[j] > trial.start:
            continue
        trial.gap = trial.start - ends[j]
        if trial.end is not None and trial.compute is not None:
            trial.slot_overhead = trial.end - ends[j] - trial.compute


def ray_session_start(pid: int) -> float | None:
    """ray.init names its session folder session_<local date-time>_<driver PID>: when the driver started Ray."""
    root = os.environ.get("RAY_TMPDIR") or os.path.join(tempfile.gettempdir(), "ray")
    for path in glob.glob(os.path.join(root, f"session_*_{pid}")):
        match = re.search(r"session_(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6})_\d+$", path)
        if match:
            return dt.datetime.strptime(match.group(1), "%Y-%m-%d_%H-%M-%S_%f").timestamp()
    return None


def show(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def trial_table(trials: list[Trial]) -> str:
    head = (f"{'trial':<20} {'recipe':<9} {'gan_ep':>6} {'synth':>5} {'state':<13} {'wall s':>7} {'compute s':>9} "
            f"{'overhead s':>10} {'launch gap s':>12} {'slot overhead s':>15}")
    lines = [head]
    for t in trials:
        lines.append(f"{t.name:<20} {t.label:<9} {t.generator_epochs:>6} {t.synthetic_ratio:>5.2f} {t.state:<13} "
                     f"{show(t.wall):>7} {show(t.compute):>9} {show(t.overhead):>10} {show(t.gap):>12} "
                     f"{show(t.slot_overhead):>15}")
    return "\n".join(lines)


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.2f}  min {min(values):.2f}  max {max(values):.2f}  (n={len(values)})"


def trial_rows(prefix: str, record: SearchRecord) -> Rows:
    trials = record.trials
    overheads = [t.overhead for t in trials if t.overhead is not None]
    gaps = [t.gap for t in trials if t.gap is not None]
    slots = [t.slot_overhead for t in trials if t.slot_overhead is not None]
    computes = [t.compute for t in trials if t.compute is not None]
    requested, trained = sum(t.gan_requested for t in trials), sum(t.gan_trained for t in trials)
    share = f"  ({100 * (1 - trained / requested):.0f}% reused from the generator cache)" if requested else ""
    return [
        (f"{prefix} GAN epochs trained / requested", f"{trained} / {requested}{share}"),
        (f"{prefix} trial compute_seconds", _stats(computes)),
        (f"{prefix} trial overhead = wall - compute (s)", _stats(overheads)),
        (f"{prefix} launch gap, slot freed -> run opened (s)", _stats(gaps)),
        (f"{prefix} slot overhead, freed -> ended - compute (s)", _stats(slots)),
        (f"{prefix} slots busy / idle tail (slot-s) / last trial alone (s)", _occupancy(record)),
    ]


def _occupancy(record: SearchRecord) -> str:
    found = record.occupancy()
    return "-" if found is None else f"{100 * found[0]:.0f}% / {found[1]:.1f} / {found[2]:.1f}"
