"""Seconds from `ganmix ...` to its one-line error, per kind of bad input (issue 18: <= 2 s on an idle machine).

    python bench/bench_errors.py [--repeats 3] [--json PATH]

Each case runs the CLI as a fresh process (what a user waits for), `--repeats` times; the table shows the
median and the slowest run, and the stage that judged the input: flags and paths (no torch, Ray or MLflow
imported), store (the tracking store's file, read with the standard library), file (a spec or recipe file
that cannot be parsed), spec (the Recipe's validation, through the families' light descriptions: no torch),
data (the data file read and judged with numpy: no torch), network (a TCP connect that is refused at once).
The slowest cases are listed last, then the median and max per stage. Numbers are inflated on a loaded
machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = [  # (stage, name, argv); {tmp} is a scratch folder
    ("flags", "--trials 0", ["search", "--trials", "0"]),
    ("flags", "--time-budget -5", ["search", "--time-budget", "-5"]),
    ("flags", "--seed 2**32", ["search", "--seed", "4294967296"]),
    ("flags", "--results-dir ''", ["search", "--results-dir", ""]),
    ("flags", "--name of 5,000 characters", ["search", "--name", "a" * 5000]),
    ("flags", "--resume x --trials 3", ["search", "--resume", "x", "--trials", "3"]),
    ("flags", "--cpus-per-trial 100", ["search", "--cpus-per-trial", "100"]),
    ("flags", "--results-dir FILE", ["search", "--results-dir", "{tmp}/a_file"]),
    ("flags", "confirm --seeds 0", ["confirm", "--seeds", "0"]),
    ("flags", "ui --port 99999", ["ui", "--port", "99999"]),
    ("paths", "best --export EXISTING", ["best", "--export", "{tmp}/a_file"]),
    ("paths", "ui on a missing folder", ["ui", "--results-dir", "{tmp}/nowhere"]),
    ("store", "search, random-bytes mlflow.db", ["search", "--results-dir", "{tmp}/damaged"]),
    ("store", "best, random-bytes mlflow.db", ["best", "--results-dir", "{tmp}/damaged"]),
    ("store", "confirm, random-bytes mlflow.db", ["confirm", "--results-dir", "{tmp}/damaged"]),
    ("store", "--tracking-uri file://", ["search", "--tracking-uri", "file:///tmp/mlruns"]),
    ("store", "--tracking-uri foo://x", ["search", "--tracking-uri", "foo://x"]),
    ("file", "spec: duplicate key", ["search", "--config", "{tmp}/dup.yaml"]),
    ("file", "spec: not UTF-8", ["search", "--config", "{tmp}/latin1.yaml"]),
    ("file", "recipe: empty", ["train", "--recipe", "{tmp}/empty.yaml"]),
    ("network", "--address 127.0.0.1:1", ["search", "--address", "127.0.0.1:1"]),
    ("network", "--storage s3:// (endpoint closed)", ["search", "--storage", "s3://bucket/x"]),
    ("spec", "--image-size 300", ["search", "--image-size", "300"]),
    ("spec", "generator_space: dcgan latent_dim low 0", ["search", "--config", "{tmp}/latent0.yaml"]),
    ("spec", "constraints: min above max", ["search", "--config", "{tmp}/contra.yaml"]),
    ("spec", "generator_space: ddpm width 3", ["search", "--config", "{tmp}/ddpm_width.yaml"]),
    ("spec", "fixed: classifier vgg", ["search", "--config", "{tmp}/vgg.yaml"]),
    ("data", "text file named .npz", ["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/text"]),
    ("data", "folder named .npz", ["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/folder"]),
    ("data", "empty val split", ["search", "--dataset", "breastmnist", "--data-dir", "{tmp}/empty_val"]),
    ("data", "--class-fraction of an unknown class", ["search", "--dataset", "breastmnist", "--data-dir",
                                                      "{tmp}/empty_val", "--class-fraction", "nope=0.5"]),
    ("data", "--class-fraction of an unknown digits class", ["search", "--class-fraction", "eleven=0.5"]),
]


def prepare(tmp: Path) -> None:
    (tmp / "a_file").write_text("x\n")
    (tmp / "latent0.yaml").write_text("generator_space:\n  dcgan:\n    latent_dim: {type: int, low: 0, high: 64}\n")
    (tmp / "contra.yaml").write_text("constraints:\n  near_copy_fraction: {min: 0.5, max: 0.1}\n")
    (tmp / "ddpm_width.yaml").write_text("space: {generator: [ddpm]}\ngenerator_space:\n  ddpm:\n    width: [3]\n")
    (tmp / "vgg.yaml").write_text("fixed: {classifier: vgg}\n")
    (tmp / "dup.yaml").write_text("trials: 2\ntrials: 3\n")
    (tmp / "latin1.yaml").write_bytes("trials: 3 # caf\u00e9\n".encode("latin-1"))
    (tmp / "empty.yaml").write_text("")
    (tmp / "damaged").mkdir()
    (tmp / "damaged" / "mlflow.db").write_bytes(os.urandom(4096))
    (tmp / "text").mkdir()
    (tmp / "text" / "breastmnist.npz").write_text("text\n")
    (tmp / "folder" / "breastmnist.npz").mkdir(parents=True)
    (tmp / "empty_val").mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("val", 0), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    np.savez(tmp / "empty_val" / "breastmnist.npz", **arrays)


def run_case(argv: list[str], tmp: Path, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ganmix.search.cli", *[a.replace("{tmp}", str(tmp)) for a in argv]],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    line = (done.stderr or done.stdout).strip().splitlines()
    return seconds, done.returncode, line[-1] if line else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str]] = []
    timed: list[tuple[float, str, str]] = []
    all_runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        prepare(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANMIX_RESULTS")}
        env.update(GANMIX_DATA_DIR=str(tmp / "no_data"), AWS_ENDPOINT_URL="http://127.0.0.1:1")
        print(f"{'stage':<8} {'case':<34} {'median s':>8} {'max s':>6}  exit  first words of the error")
        for stage, name, argv in CASES:
            times, code, line = [], 0, ""
            for _ in range(args.repeats):
                seconds, code, line = run_case(argv, tmp, env)
                times.append(seconds)
            all_runs.setdefault(stage, []).extend(times)
            median = statistics.median(times)
            print(f"{stage:<8} {name:<34} {median:8.2f} {max(times):6.2f}  {code:>4}  {line[:60]}", flush=True)
            rows.append((f"{stage}: {name} (s)", f"{median:.2f}"))
            timed.append((max(times), stage, name))
    load = (load_before, os.getloadavg()[0])
    print("\nslowest (max s):")
    for seconds, stage, name in sorted(timed, reverse=True)[:5]:
        print(f"  {seconds:6.2f}  {stage}: {name}")
    print("\nper stage: median and max over its cases' runs (s)")
    for stage in dict.fromkeys(stage for stage, _, _ in CASES):
        runs = all_runs[stage]
        print(f"  {stage:<8} {statistics.median(runs):6.2f} {max(runs):6.2f}  ({len(runs)} runs)")
    print(f"\n{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; load average {load[0]:.1f} before, "
          f"{load[1]:.1f} after")
    if args.json:
        args.json.write_text(json.dumps({"bench": "errors", "rows": [list(r) for r in rows], "load": list(load)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
