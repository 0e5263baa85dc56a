"""Search-level costs: per-trial overhead of a real small search, the demo's wall time, sample-metric time.

    python bench/bench_search.py [--device cpu|cuda] [--threads 2] [--data-dir DIR] [--skip-demo] [--skip-reuse]
                                 [--trials 4] [--max-concurrent 2] [--reuse-trials 8] [--json PATH] [--keep]

(a) Trial overhead. Runs `ganmix search` (python -m ganmix.search.cli) as a subprocess on breastmnist in a
    temporary results folder: a 4-trial spec (the real-only baseline first), generator_epochs 2..5, classifier_epochs 3,
    small_cnn. Every trial's MLflow run carries `compute_seconds` (logged by the trial: time inside
    execute_recipe up to its last report) and `trial_wall_seconds` (logged by the driver: Tune's trial start,
    i.e. the trial's actor is up, to completion); they are read back from RESULTS/mlflow.db. Per trial the table
    gives wall, compute, overhead = wall - compute and, for trials after the first wave, the launch gap (the slot's
    previous trial ended -> this trial's MLflow run opened in its worker) and slot overhead (previous trial ended ->
    this one ended, minus compute): that part of a trial's cost happens before Tune calls the trial started
    (new actor process, imports, MLflow run set-up), so trial_wall_seconds does not see it.
    The search's total wall time is split with timestamps that need no instrumentation: process launch, the MLflow
    parent run's start, the Ray session folder's name (ray.init stamps it with the driver's PID and the time),
    the first trial run's start and the last trial run's end. A separate process times ray.init alone (same
    arguments as ganmix.search.runner) and the import of the trial's modules in a fresh interpreter.
    Every search also gives its time to first trial (launch -> first trial run opened) and the GAN epochs its
    trials trained versus requested (the rest came from the generator cache).
(b) Demo wall time. `ganmix search --results-dir TMP --quiet` (the packaged digits demo), timed end to end.
(c) Sample-metric time per trial. ganmix.models.quality.sample_quality on a generated set the size of
    breastmnist's train split (the train split plus Gaussian pixel noise scores like generator output), with the
    reference classifier from the search's own cache, at 1 thread (what a cpus_per_trial=1 trial gets) and at
    --threads, plus its parts.
(d) Generator reuse. A search whose trials share one generator-cache key (dcgan, latent 32) and differ in
    generator_epochs: GAN epochs trained versus requested.

Searches start their own local Ray instance (RAY_ADDRESS=local in the child's environment, unless --ray-address
is given), so a Ray cluster another process runs on this machine is neither joined nor touched; the child's Ray
processes end with it. MLFLOW_TRACKING_URI is dropped from the child's environment so the runs land in the
temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from _common import DEFAULT_DATA, Rows, default_device, load_average, noisy, print_rows, timed, write_json

# What both searches share: data, budget and resources (filled in by str.format).
_SPEC_HEAD = """\
dataset: breastmnist
trials: {trials}
max_concurrent: {max_concurrent}
cpus_per_trial: 1
gpus_per_trial: {gpus_per_trial}
metric: val_auc
seed: 0
grace_period: 2
"""

SPEC = """\
# bench/bench_search.py: a real but small search on breastmnist (the baseline is one of the trials).
""" + _SPEC_HEAD + """\
space:
  generator_epochs: {{type: int, low: 2, high: 5}}
  synthetic_ratio: {{type: float, low: 0.5, high: 1.5}}
  classifier_lr: {{type: float, low: 3.0e-4, high: 3.0e-3, log: true}}
  generator: {{type: categorical, choices: [dcgan, wgan_gp, acgan, cvae]}}
  allocation: {{type: categorical, choices: [proportional, balance]}}
fixed:
  classifier: small_cnn
  classifier_epochs: 3
  classifier_min_steps: 0   # infrastructure figures, not answers: no step floor
"""

# (d) generator reuse: one family and latent size, so trials share generator-cache keys and differ in generator_epochs.
REUSE_SPEC = """\
# bench/bench_search.py (d): generator reuse across trials (one key, several generator_epochs).
""" + _SPEC_HEAD + """\
space:
  generator_epochs: {{type: int, low: 2, high: 12}}
  synthetic_ratio: {{type: float, low: 0.5, high: 1.0}}
  classifier_lr: {{type: float, low: 3.0e-4, high: 3.0e-3, log: true}}
fixed:
  generator: dcgan
  generator_options: {{latent_dim: 32}}
  classifier: small_cnn
  classifier_epochs: 2
  classifier_min_steps: 0
"""

# ray.init exactly as ganmix.search.runner.run_search calls it (address from RAY_ADDRESS, i.e. local).
RAY_INIT_PROBE = """\
import json, time
t0 = time.perf_counter()
import ray
t1 = time.perf_counter()
ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
t2 = time.perf_counter()
ray.shutdown()
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "init": t2 - t1, "shutdown": t3 - t2}))
"""

IMPORT_PROBE = """\
import json, time
t0 = time.perf_counter()
import ganmix.search.trainable, ganmix.search.pipeline, ganmix.models.reference, ganmix.models.quality
print(json.dumps({"import": time.perf_counter() - t0}))
"""


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

    from ganmix.tracking.runs import read_metrics

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{results_dir.resolve() / 'mlflow.db'}")
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


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def trial_table(trials: list[Trial]) -> str:
    head = (f"{'trial':<20} {'recipe':<9} {'gan_ep':>6} {'synth':>5} {'state':<13} {'wall s':>7} {'compute s':>9} "
            f"{'overhead s':>10} {'launch gap s':>12} {'slot overhead s':>15}")
    lines = [head]
    for t in trials:
        lines.append(f"{t.name:<20} {t.label:<9} {t.generator_epochs:>6} {t.synthetic_ratio:>5.2f} {t.state:<13} "
                     f"{_f(t.wall):>7} {_f(t.compute):>9} {_f(t.overhead):>10} {_f(t.gap):>12} "
                     f"{_f(t.slot_overhead):>15}")
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


# --- (a) and (b) ---------------------------------------------------------------------------------------------
def bench_small_search(args: argparse.Namespace, root: Path, env: dict[str, str], rows: Rows) -> SearchRecord | None:
    spec = root / "search.yaml"
    gpus = 0.0 if not args.device.startswith("cuda") else round(1.0 / args.max_concurrent, 3)
    spec.write_text(SPEC.format(trials=args.trials, max_concurrent=args.max_concurrent, gpus_per_trial=gpus))
    results = root / "search"
    cli = ["search", "--config", str(spec), "--data-dir", str(args.data_dir), "--results-dir", str(results), "--quiet"]
    if args.ray_address:
        cli += ["--address", args.ray_address]
    print(f"\n(a) small search on breastmnist: {args.trials} trials, max {args.max_concurrent} concurrent, "
          f"1 CPU{f' + {gpus} GPU' if gpus else ''} each, generator_epochs 2..5, classifier_epochs 3, small_cnn "
          f"(load average {load_average():.2f})", flush=True)
    run = run_cli(cli, log=root / "search.log", env=env, timeout=args.timeout)
    rows.append(("(a) search total wall (s)", f"{run.seconds:.1f}" + ("" if run.ok else f"  [{run.status}]")))
    if not run.ok:
        print(f"search failed ({run.status}); the end of its output:\n{run.tail()}")
    if not (results / "mlflow.db").is_file():
        return None
    record = read_search(results, args.max_concurrent)
    trials = record.trials
    print(trial_table(trials))
    rows.append(("(a) trials: completed / stopped early / failed",
                 " / ".join(str(sum(t.state == s for t in trials)) for s in ("completed", "stopped early", "failed"))))
    rows.extend(trial_rows("(a)", record))

    # Where the search's wall time goes, from timestamps (no instrumentation).
    ray_start = ray_session_start(run.pid)
    first_start = min((t.start for t in trials), default=None)
    last_end = max((t.end for t in trials if t.end is not None), default=None)
    exited = run.launched + run.seconds
    rows.append(("(a) time to first trial: launch -> 1st trial run opened (s)", _f(first_start and first_start - run.launched, ".1f")))
    marks = [("launch -> parent run: imports, data, MLflow store", run.launched, record.parent_start),
             ("parent run -> ray.init: Ray start (reference classifier trains alongside)", record.parent_start,
              ray_start),
             ("ray.init -> 1st trial run: Ray, Tune, 1st actors", ray_start, first_start),
             ("1st trial run -> last trial end", first_start, last_end),
             ("last trial end -> exit: parent run, Ray shutdown", last_end, exited)]
    for label, a, b in marks:
        share = "" if a is None or b is None else f"  ({100 * (b - a) / run.seconds:.0f}%)"
        rows.append((f"(a)   {label} (s)", "-" if a is None or b is None else f"{b - a:.1f}{share}"))

    ray_probe = probe(RAY_INIT_PROBE, env)
    if ray_probe is not None:
        rows.append(("(a) ray.init alone, fresh process (s)",
                     f"{ray_probe['init']:.2f}  ({100 * ray_probe['init'] / run.seconds:.0f}% of the search); "
                     f"import ray {ray_probe['import']:.2f}, shutdown {ray_probe['shutdown']:.2f}"))
    import_probe = probe(IMPORT_PROBE, env)
    if import_probe is not None:
        rows.append(("(a) trial modules' import, fresh interpreter (s)", f"{import_probe['import']:.2f}"))
    return record


def bench_demo(args: argparse.Namespace, root: Path, env: dict[str, str], rows: Rows) -> None:
    results = root / "demo"
    print(f"\n(b) the packaged demo: ganmix search --results-dir {results} --quiet (load average {load_average():.2f})",
          flush=True)
    cli = ["search", "--results-dir", str(results), "--quiet"]
    run = run_cli(cli, log=root / "demo.log", env=env, timeout=args.timeout)
    if not run.ok:
        print(f"demo failed ({run.status}); the end of its output:\n{run.tail()}")
    match = re.search(r"^search \S+: (\d+) trials, (\d+) failed", run.log.read_text(errors="replace"), re.M)
    printed = f"{match.group(1)} trials, {match.group(2)} failed (as printed)" if match else "no summary printed"
    rows.append(("(b) demo total wall (s)", f"{run.seconds:.1f}" + ("" if run.ok else f"  [{run.status}]")))
    record = read_search(results, 2) if (results / "mlflow.db").is_file() else None
    if record is not None:
        states = [t.state for t in record.trials]
        rows.append(("(b) demo trials", f"{len(record.trials)} in MLflow: {states.count('completed')} completed, "
                                        f"{states.count('stopped early')} stopped early, {states.count('failed')} "
                                        f"failed; {printed}"))
        print(trial_table(record.trials))
        first = min((t.start for t in record.trials), default=None)
        rows.append(("(b) demo time to first trial: launch -> 1st trial run opened (s)",
                     _f(first and first - run.launched, ".1f")))
        rows.extend(trial_rows("(b) demo", record))
    else:
        rows.append(("(b) demo trials", printed))


def bench_reuse(args: argparse.Namespace, root: Path, env: dict[str, str], rows: Rows) -> None:
    spec = root / "reuse.yaml"
    gpus = 0.0 if not args.device.startswith("cuda") else round(1.0 / args.max_concurrent, 3)
    spec.write_text(REUSE_SPEC.format(trials=args.reuse_trials, max_concurrent=args.max_concurrent,
                                      gpus_per_trial=gpus))
    results = root / "reuse"
    print(f"\n(d) generator reuse on breastmnist: {args.reuse_trials} trials, dcgan, latent 32, generator_epochs 2..12, "
          f"classifier_epochs 2, no sample metrics (load average {load_average():.2f})", flush=True)
    cli = ["search", "--config", str(spec), "--data-dir", str(args.data_dir), "--results-dir", str(results),
           "--no-sample-metrics", "--quiet"]
    run = run_cli(cli, log=root / "reuse.log", env=env, timeout=args.timeout)
    rows.append(("(d) reuse search total wall (s)", f"{run.seconds:.1f}" + ("" if run.ok else f"  [{run.status}]")))
    if (results / "mlflow.db").is_file():
        record = read_search(results, args.max_concurrent)
        print(trial_table(record.trials))
        rows.extend(trial_rows("(d)", record)[:2])


# --- (c) ----------------------------------------------------------------------------------------------------
def bench_metrics(args: argparse.Namespace, cache_dir: Path, rows: Rows, record: SearchRecord | None) -> None:
    from ganmix.datasets import load_dataset
    from ganmix.models.quality import fid, kid, memorization, precision_recall, sample_quality
    from ganmix.models.reference import reference_classifier, reference_path

    device = torch.device(args.device)
    ds = load_dataset("breastmnist", data_dir=args.data_dir, download=False)
    train = ds.train
    print(f"\n(c) sample_quality on {len(train)} generated vs {len(train)} real images, device {device} "
          f"(load average {load_average():.2f})", flush=True)
    cached = reference_path(ds, cache_dir).is_file()
    start = time.perf_counter()
    ref = reference_classifier(ds, cache_dir=cache_dir, device=device)
    how = "loaded from the search's cache" if cached else "trained, 15 epochs (no cached copy)"
    rows.append(("(c) reference classifier (s)", f"{time.perf_counter() - start:.2f}  ({how}; val_acc {ref.val_acc:.3f})"))

    fake, labels = noisy(train.images, sigma=20.0, seed=1), train.labels
    sample_quality(ref, train.images, train.labels, fake[:32], labels[:32])  # warm-up
    thread_counts = [1, args.threads] if device.type == "cpu" and args.threads != 1 else [args.threads]
    medians: dict[int, float] = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        times = [timed(lambda: sample_quality(ref, train.images, train.labels, fake, labels)) for _ in range(args.repeats)]
        medians[threads] = statistics.median(times)
        rows.append((f"(c) sample_quality {len(train)} vs {len(fake)}, {threads} thread(s) (s)",
                     f"median {medians[threads]:.3f}  min {min(times):.3f}  (n={len(times)})"))

    torch.set_num_threads(args.threads)
    real_feats, fake_feats = ref.features(train.images), ref.features(fake)
    parts = {
        "features, real + generated": lambda: (ref.features(train.images), ref.features(fake)),
        "precision/recall (k=3)": lambda: precision_recall(real_feats, fake_feats, k=3),
        "memorization (pixel NN)": lambda: memorization(train.images, fake),
        "fid": lambda: fid(real_feats, fake_feats),
        "kid (10 subsets)": lambda: kid(real_feats, fake_feats),
    }
    shown = []
    for name, fn in parts.items():
        shown.append(f"{name} {statistics.median(timed(fn) for _ in range(args.repeats)):.3f}")
    rows.append((f"(c)   parts at {args.threads} thread(s) (s)", "; ".join(shown)))

    if record is not None:
        computes = [t.compute for t in record.trials if t.compute is not None and t.label != "baseline"]
        if computes:
            one = medians[thread_counts[0]]
            rows.append(("(c) share of a trial's compute_seconds",
                         f"{100 * one / statistics.median(computes):.0f}% of the (a) median {statistics.median(computes):.1f} s "
                         f"(non-baseline trials; a trial scores synthetic_ratio x train images, here 1x)"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=textwrap.dedent(__doc__.split("\n", 2)[2]))
    parser.add_argument("--device", default=default_device(), help="cuda: trials get a GPU share; (c) runs there")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for (c)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA.parent, help="folder holding breastmnist.npz")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats in (c)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for each search subprocess")
    parser.add_argument("--ray-address", default=None, help="pass --address to the searches instead of a fresh "
                                                            "local Ray (e.g. 'auto' to join a running cluster)")
    parser.add_argument("--skip-search", action="store_true", help="skip (a)")
    parser.add_argument("--skip-demo", action="store_true", help="skip (b)")
    parser.add_argument("--skip-metrics", action="store_true", help="skip (c)")
    parser.add_argument("--skip-reuse", action="store_true", help="skip (d)")
    parser.add_argument("--reuse-trials", type=int, default=8, help="trials in (d)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary results folders")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (for bench/run_all.py)")
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()

    load_before = load_average()
    torch.set_num_threads(args.threads)
    env = child_env(args.ray_address)
    root = Path(tempfile.mkdtemp(prefix="ganmix-bench-search-"))
    print(f"bench_search: device {args.device}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"results under {root}, load average {load_before:.2f}", flush=True)
    rows: Rows = []
    record = None
    try:
        if not args.skip_search:
            record = bench_small_search(args, root, env, rows)
        if not args.skip_demo:
            bench_demo(args, root, env, rows)
        if not args.skip_metrics:
            bench_metrics(args, root / "search" / "cache", rows, record)
        if not args.skip_reuse:
            bench_reuse(args, root, env, rows)
    finally:
        load_after = load_average()
        rows.append(("load average (1 min) before / after", f"{load_before:.2f} / {load_after:.2f}"))
        print()
        print_rows(rows)
        write_json(args.json, "search", rows, (load_before, load_after))
        if args.keep:
            print(f"results kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if FAILED:
        print(f"failed: {', '.join(FAILED)}", file=sys.stderr)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
