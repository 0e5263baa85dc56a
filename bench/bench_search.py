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
import os
import re
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from _common import DEFAULT_DATA, Rows, default_device, load_average, noisy, print_rows, timed, write_json
from _search_record import (FAILED, SearchRecord, child_env, probe, ray_session_start, read_search, run_cli, show,
                            trial_rows, trial_table)

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
    rows.append(("(a) time to first trial: launch -> 1st trial run opened (s)", show(first_start and first_start - run.launched, ".1f")))
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
                     show(first and first - run.launched, ".1f")))
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
    sample_quality(ref, train.images, train.labels, fake_images_u8=fake[:32], fake_labels=labels[:32])  # warm-up
    thread_counts = [1, args.threads] if device.type == "cpu" and args.threads != 1 else [args.threads]
    medians: dict[int, float] = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        times = [timed(lambda: sample_quality(ref, train.images, train.labels, fake_images_u8=fake, fake_labels=labels)) for _ in range(args.repeats)]
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
